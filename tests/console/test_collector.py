"""The console process's collector: what survives a full collection is frozen, so the next one
walks only what became long-lived since, and frozen garbage is collected once the person is idle
(or after many freezes, whatever they do)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from console.collector import Collector


class Node:
    """An object in a reference cycle, as a closed screen's widgets are."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def frozen_heap() -> Iterator[None]:
    gc.unfreeze()
    gc.collect()
    yield
    gc.unfreeze()


def cycle() -> weakref.ref[Node]:
    """A cycle that has survived a full collection (it was alive then), now garbage."""
    node = Node()
    gc.collect()
    return weakref.ref(node)


def test_survivors_are_frozen_and_reclaimed_once_idle(frozen_heap: None) -> None:
    collector = Collector(idle_seconds=0.0)
    collector.start()
    try:
        gone = cycle()
        assert gc.get_count()[2] == 0 and not gc.get_objects(2)  # the survivors were frozen
        gc.collect()
        assert gone() is not None  # frozen garbage: full collections no longer reach it
        assert not collector.reclaim_if_due(busy=True)  # a worker is running: not now
        assert collector.reclaim_if_due(busy=False)
        assert gone() is None
        assert not collector.reclaim_if_due(busy=False)  # nothing frozen since
    finally:
        collector.stop()


def test_a_key_pressed_defers_the_reclaim_until_too_many_freezes(
    frozen_heap: None,
) -> None:
    collector = Collector(idle_seconds=60.0, force_after=1000)
    collector.start()
    try:
        gone = cycle()
        collector.input_seen()
        assert not collector.reclaim_if_due(busy=False)
        collector.force_after = collector.freezes
        assert collector.reclaim_if_due(busy=True)
        assert gone() is None
    finally:
        collector.stop()


def test_a_stopped_collector_leaves_collections_as_they_were(frozen_heap: None) -> None:
    collector = Collector(idle_seconds=0.0)
    collector.stop()
    collector.start()  # the console closed before its preload finished
    gone = cycle()
    gc.collect()
    assert gone() is None and not gc.get_freeze_count() and not collector.freezes
    assert collector._after_collection not in gc.callbacks
