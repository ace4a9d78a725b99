"""Driving the console with Textual's Pilot: build the app for an operator, let it settle after a
key, read what a widget shows, and wait for something to happen instead of sleeping.

Screens load their data in workers, so after a key the app is only settled once its messages are
handled, every worker has finished, and the messages the workers posted are handled in turn.
``LoopLag`` watches the app's event loop meanwhile: a screen that calls a service on it (instead
of in a worker) stalls every frame of that session, and the probe names the action that did.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from sqlalchemy.engine import Engine
from textual.app import App
from textual.dom import DOMNode
from textual.pilot import Pilot
from textual.worker import WorkerCancelled

from console.app import SSRConsoleApp
from services.access import operators
from services.core.context import ConsoleContext
from services.core.settings import Settings

EXTRA_ROUNDS = 2
TIMEOUT = 15.0  # seconds: generous, a busy two-core machine runs several suites at once


def app_for(
    engine: Engine, settings: Settings, username: str = "caaspp", *, owns_process: bool = False
) -> SSRConsoleApp:
    """The console as operator ``username`` sees it (``owns_process``: as its own process runs
    it, ``SSRConsoleApp``)."""
    return SSRConsoleApp(
        ConsoleContext(engine, settings, operators.resolve(engine, username)),
        owns_process=owns_process,
    )


async def settle(pilot: Pilot) -> None:  # type: ignore[type-arg]
    """Let the app finish what the last key started: its messages, every worker, and what the
    workers posted back, again while a worker's result started another (a few rounds at most:
    a screen that polls starts one every second)."""
    await pilot.pause()
    for _ in range(EXTRA_ROUNDS + 1):
        # an exclusive worker cancelled to make way for a newer one: the next round waits for that
        with contextlib.suppress(WorkerCancelled):
            await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if not list(pilot.app.workers):
            return


def text(node: App | DOMNode, selector: str) -> str:  # type: ignore[type-arg]
    """What the widget at ``selector`` shows, in the app's current screen or under ``node``."""
    root = node.screen if isinstance(node, App) else node
    return str(root.query_one(selector).render())  # type: ignore[attr-defined]


def notices(app: App) -> list[str]:  # type: ignore[type-arg]
    """The notifications on screen, as "title: message"."""
    return [f"{n.title}: {n.message}" for n in app._notifications]


def wait_for(
    predicate: Callable[[], object],
    timeout: float = TIMEOUT,
    what: str = "",
    interval: float = 0.05,
) -> None:
    """Return as soon as ``predicate()`` is true (a process wrote its row, a server answered);
    fail after ``timeout`` seconds, saying ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what or predicate}")
        time.sleep(interval)


async def until(
    predicate: Callable[[], object | Awaitable[object]],
    pilot: Pilot | None = None,  # type: ignore[type-arg]
    timeout: float = TIMEOUT,
    what: str = "",
    interval: float = 0.05,
) -> None:
    """``wait_for`` inside the event loop: the app (settled between looks when ``pilot`` is
    given) keeps running while it waits."""
    deadline = time.monotonic() + timeout
    while True:
        if pilot is not None:
            await settle(pilot)
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what or predicate}")
        await asyncio.sleep(interval)


@dataclass
class LoopLag:
    """A task on the app's event loop that sleeps ``TICK`` seconds at a time and records how late
    it wakes: a late wake-up is a stall, when the session drew no frame and read no key. The time
    the machine gave other processes meanwhile is not counted (tests share a small machine): the
    longest any of this process's threads waited for a CPU. Work on the loop, and a worker thread
    holding the GIL while it runs, are.

    The loop's task only reads the clock. A thread of the probe's own reads the threads' waits
    (files in /proc) and charges each late wake-up, less those waits, to its action: a file read
    on the loop gives up the GIL, and getting it back from a busy worker takes up to the switch
    interval (5 ms) per read, so reading them there made the stalls it measured (0.2-0.5 s).

    ``doing`` names what the test is driving, so each stall is charged to an action::

        async with LoopLag() as lag:
            lag.doing = "create a print batch"
            await pilot.press("ctrl+s")
        assert lag.worst < 0.1, lag.report()
    """

    TICK = 0.01
    SAMPLE = 0.005  # seconds between two readings of the threads' waits
    doing: str = "start"
    stalls: dict[str, float] = field(default_factory=dict)  # action -> its longest stall (s)
    culprits: dict[str, str] = field(default_factory=dict)  # action -> the code that stalled
    in_services: dict[str, str] = field(default_factory=dict)  # action -> a service call it
    # made on the loop while the loop was late (what a worker is for)
    _task: asyncio.Task[None] | None = None
    _sampler: threading.Thread | None = None
    _woke: float = 0.0  # monotonic time the probe last ran
    _late: deque[tuple[str, float, float]] = field(default_factory=deque)  # wake-ups later than
    # the action's longest stall so far, (action, slept at, woke at), for the sampler to charge
    _waits: deque[tuple[float, dict[str, float]]] = field(
        default_factory=lambda: deque(maxlen=2000)  # (monotonic time, the threads' waits then)
    )
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def worst(self) -> float:
        return max(self.stalls.values(), default=0.0)

    def report(self) -> str:
        """The actions by their longest stall, longest first, in milliseconds."""
        ranked = sorted(self.stalls.items(), key=lambda item: -item[1])
        return "; ".join(
            f"{action}: {stall * 1000:.0f} ms"
            + (f" in {self.culprits[action]}" if action in self.culprits else "")
            for action, stall in ranked
        )

    async def _watch(self) -> None:
        while True:
            before = self._woke = time.monotonic()
            await asyncio.sleep(self.TICK)
            woke = time.monotonic()
            if woke - before - self.TICK > self.stalls.get(self.doing, 0.0):
                self._late.append((self.doing, before, woke))

    def _sample(self, loop_thread: int) -> None:
        """From a thread of its own: read the threads' waits, charge the late wake-ups, and while
        the loop is late, note the project code it is in."""
        _PROBES.add(str(threading.get_native_id()))
        while True:
            stopping = self._stop.wait(self.SAMPLE)
            self._waits.append((time.monotonic(), _runqueue_wait()))
            self._charge()
            if stopping:
                return
            if time.monotonic() - self._woke > 0.05:
                frame = sys._current_frames().get(loop_thread)
                where = _project_frames(frame)
                if where:
                    self.culprits.setdefault(self.doing, where)
                if "services/" in where and _waits_on_io(frame):
                    self.in_services.setdefault(self.doing, where)

    def _charge(self) -> None:
        """Each late wake-up read since, less the longest any thread waited for a CPU from the
        last reading before the probe slept to the first after it woke (a slightly wider span:
        a busy machine is forgiven a few milliseconds more, never less)."""
        last = self._waits[-1][0]
        while self._late and self._late[0][2] <= last:
            doing, slept, woke = self._late.popleft()
            before = next((w for t, w in reversed(self._waits) if t <= slept), self._waits[0][1])
            after = next(w for t, w in self._waits if t >= woke)
            late = woke - slept - self.TICK - _descheduled(before, after)
            if late > self.stalls.get(doing, 0.0):
                self.stalls[doing] = late

    async def __aenter__(self) -> LoopLag:
        self._woke = time.monotonic()
        self._sampler = threading.Thread(
            target=self._sample, args=(threading.get_ident(),), daemon=True
        )
        self._sampler.start()
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None and self._sampler is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._stop.set()
        await asyncio.to_thread(self._sampler.join)  # it charges the last wake-ups


_PROBES: set[str] = set()  # the samplers' own threads, whose waits are not the loop's


def _runqueue_wait() -> dict[str, float]:
    """Seconds each thread of this process has waited, runnable, for a CPU (Linux
    ``schedstat``; nothing elsewhere)."""
    waited = {}
    for task in Path("/proc/self/task").glob("*"):
        if task.name in _PROBES:
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            waited[task.name] = int((task / "schedstat").read_text().split()[1]) / 1e9
    return waited


def _descheduled(before: dict[str, float], after: dict[str, float]) -> float:
    """How long the loop was held up by the machine rather than by the console: the longest any
    thread (the loop's own, or a worker holding the GIL it waits for) waited for a CPU."""
    return max((after[task] - before.get(task, after[task]) for task in after), default=0.0)


ROOT = Path(__file__).resolve().parents[1]
BLOCKING = (
    "/sqlalchemy/",
    "/psycopg/",
    "/pathlib.py",
    "/shutil.py",
    "/subprocess.py",
    "/socket.py",
)
"""Where a call waits on the database, a file, a process or the network: a service call there
is what a worker is for. A stall can come anywhere (a garbage collection, Textual's own work),
so the loop sampled in a pure service helper (the escaping ``widgets.plain`` applies, a
permission check) is not taken for one."""


def _waits_on_io(frame: FrameType | None) -> bool:
    """Whether the stack under ``frame`` is in the database, a file, a process or a socket."""
    while frame is not None:
        if any(part in frame.f_code.co_filename for part in BLOCKING):
            return True
        frame = frame.f_back
    return False


def _project_frames(frame: FrameType | None) -> str:
    """The console's own calls on a stack (screens, widgets, services, console, tests),
    innermost first, as paths under the repository."""
    found = []
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.is_relative_to(ROOT) and ".venv" not in path.parts:
            found.append(f"{path.relative_to(ROOT)}:{frame.f_lineno} {frame.f_code.co_name}")
        frame = frame.f_back
    return " < ".join(found[:3])
