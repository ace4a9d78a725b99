"""Driving the console with Textual's Pilot: build the app for an operator, let it settle after a
key, read what a widget shows, and wait for something to happen instead of sleeping.

Screens load their data in workers, so after a key the app is only settled once its messages are
handled, every worker has finished, and the messages the workers posted are handled in turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

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


def app_for(engine: Engine, settings: Settings, username: str = "caaspp") -> SSRConsoleApp:
    """The console as operator ``username`` sees it."""
    return SSRConsoleApp(ConsoleContext(engine, settings, operators.resolve(engine, username)))


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
