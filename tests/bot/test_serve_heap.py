"""The running service keeps the garbage collector off what startup built, and seldom on what
requests build, while cycles are still freed."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from bot.serve import YOUNG_COLLECTION_THRESHOLD, _settle_heap


@pytest.fixture
def unfrozen() -> Iterator[None]:
    threshold = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class _Node:
    """Half of a reference cycle, which says when it is freed."""

    def __init__(self, freed: list[str]) -> None:
        self.freed = freed
        self.other: _Node | None = None

    def __del__(self) -> None:
        self.freed.append("node")


def _drop_a_cycle(freed: list[str]) -> None:
    """Make two nodes that refer to each other and let go of them: only a collection frees them."""
    first, second = _Node(freed), _Node(freed)
    first.other, second.other = second, first


@pytest.mark.usefixtures("unfrozen")
def test_what_startup_built_is_frozen_and_later_garbage_is_still_collected() -> None:
    built_at_startup = [object() for _ in range(1000)]
    assert gc.get_freeze_count() == 0
    _settle_heap()
    # Everything alive then is out of the collector's way (full collections no longer walk it).
    assert gc.get_freeze_count() >= len(built_at_startup)
    # A cycle made afterwards is still found and freed.
    freed: list[str] = []
    _drop_a_cycle(freed)
    gc.collect()
    assert freed == ["node", "node"]


@pytest.mark.usefixtures("unfrozen")
def test_young_objects_are_collected_seldom_but_cycles_still_without_an_explicit_collect() -> None:
    older = gc.get_threshold()[1:]
    _settle_heap()
    assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, *older)
    assert YOUNG_COLLECTION_THRESHOLD > 700  # CPython's default, which this raises
    freed: list[str] = []
    gc.collect()  # a clean start: the count of young allocations from zero
    _drop_a_cycle(freed)
    assert freed == []  # reference counting alone never frees a cycle
    # Enough new containers to pass the threshold: the collector runs by itself.
    kept: list[list[object]] = [[] for _ in range(YOUNG_COLLECTION_THRESHOLD + 100)]
    assert freed == ["node", "node"]
    del kept
