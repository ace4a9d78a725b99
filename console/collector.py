"""Full garbage collections kept short in a process that is the console's alone (issue 21).

CPython's full collection walks every tracked object not frozen, holding the GIL throughout, so
on the event loop or in a worker it stalls the session: on a district-size demo the heap the
screens build grew to 250,000 objects and each full collection took 200-350 ms of CPU, about one
per action (tests/screens/test_no_freeze.py). What survives a full collection is mostly what the
console keeps (screens on the stack, render and statement caches), so ``Collector`` freezes it
(``gc.freeze``, docs.python.org/3/library/gc.html#gc.freeze): the next full collection walks
only what became long-lived since, and found 35,000-85,000 objects (20-120 ms) on the same tour.

Frozen objects that later become garbage (a closed screen's widgets, which hold cycles) are not
reclaimed by those collections. ``reclaim_if_due`` collects everything once more: when the
person has pressed nothing for ``idle_seconds`` and no worker is running, if anything was frozen
since the last time; or, so memory stays bounded whatever the session does, after
``force_after`` freezes. (Freezes are counted: ``gc.get_freeze_count`` walks the whole frozen
heap, 60-400 ms on the loop every time it was read in the test above.)
"""

from __future__ import annotations

import gc
import time


class Collector:
    """Freezes what survives each full collection; reclaims frozen garbage when idle."""

    def __init__(self, *, idle_seconds: float = 10.0, force_after: int = 100) -> None:
        self.idle_seconds = idle_seconds
        self.force_after = force_after
        self.last_input = time.monotonic()
        self.freezes = 0  # full collections whose survivors were frozen since the last reclaim
        self._started = self._stopped = False

    def start(self) -> None:
        """Freeze what the started console holds, and every full collection's survivors."""
        if self._stopped:  # the console closed before it finished starting
            return
        gc.freeze()
        self._started = True
        gc.callbacks.append(self._after_collection)

    def stop(self) -> None:
        """Collections as before (a console hosted in a test process, closing)."""
        self._stopped = True
        if self._after_collection in gc.callbacks:
            gc.callbacks.remove(self._after_collection)

    def _after_collection(self, phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            gc.freeze()
            self.freezes += 1

    def input_seen(self) -> None:
        """A key or the mouse: the person is there, and a reclaim would stall what they do."""
        self.last_input = time.monotonic()

    def reclaim_if_due(self, *, busy: bool) -> bool:
        """Collect the frozen heap's garbage if it is due (``busy``: a worker is running)."""
        if not self._started or self._stopped or not self.freezes:
            return False
        idle = not busy and time.monotonic() - self.last_input >= self.idle_seconds
        if not idle and self.freezes < self.force_after:
            return False
        gc.unfreeze()
        gc.collect()  # _after_collection freezes the survivors again
        self.freezes = 0
        return True
