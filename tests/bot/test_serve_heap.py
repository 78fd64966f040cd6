"""The running service keeps the garbage collector off what startup built."""

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


@pytest.mark.usefixtures("unfrozen")
def test_what_startup_built_is_frozen_and_later_garbage_is_still_collected() -> None:
    built_at_startup = [object() for _ in range(1000)]
    assert gc.get_freeze_count() == 0
    _settle_heap()
    # Everything alive then is out of the collector's way (full collections no longer walk it).
    assert gc.get_freeze_count() >= len(built_at_startup)
    # A cycle made afterwards is still found and freed.
    collected: list[str] = []

    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

        def __del__(self) -> None:
            collected.append("node")

    first, second = Node(), Node()
    first.other, second.other = second, first
    del first, second
    gc.collect()
    assert collected == ["node", "node"]


@pytest.mark.usefixtures("unfrozen")
def test_young_objects_are_collected_seldom_but_cycles_still_without_an_explicit_collect() -> None:
    older = gc.get_threshold()[1:]
    _settle_heap()
    assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, *older)
    assert YOUNG_COLLECTION_THRESHOLD > 700  # CPython's default, which this raises
    freed: list[str] = []

    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

        def __del__(self) -> None:
            freed.append("node")

    gc.collect()  # a clean start: the count of young allocations from zero
    first, second = Node(), Node()
    first.other, second.other = second, first
    del first, second
    assert freed == []  # a cycle: reference counting alone never frees it
    # Enough new containers to pass the threshold: the collector runs by itself.
    kept: list[list[object]] = [[] for _ in range(YOUNG_COLLECTION_THRESHOLD + 100)]
    assert freed == ["node", "node"]
    del kept
