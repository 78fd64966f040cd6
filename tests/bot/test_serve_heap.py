"""The running service keeps the garbage collector off what startup built."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from bot.serve import _settle_heap


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


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
