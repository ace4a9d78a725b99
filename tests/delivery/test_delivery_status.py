"""A batch's status tells the truth after a crash: nothing left open means it is not "running",
a dead worker is shown as no worker (and since when), and an ETA waits for a measured rate.

The workers here are real ``ssr-console worker`` processes, SIGKILLed while the relay (aiosmtpd on
loopback) holds a message in DATA; the progress screen is driven with Textual's Pilot at 80x24.
"""

from __future__ import annotations

import asyncio
import html
import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from console.app import SSRConsoleApp
from screens.batch_progress import BatchProgressScreen
from services.access import operators
from services.audit.log import Actor
from services.core import db
from services.core.columns import utcnow
from services.core.db import session_scope
from services.core.settings import Settings
from services.delivery import batches, ledger
from services.delivery.ledger import BatchStatus, DeliveryItem, DeliveryWorker, ItemState
from tests.delivery.test_delivery_crash import finish, worker, write_config
from tests.delivery.test_delivery_screens import SIZE
from tests.delivery_harness import MailSink, copy_database, first_school_batch, seeded_template
from tests.pilot import app_for, settle, text, until, wait_for


@pytest.fixture
def engine(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Engine]:
    template = seeded_template(tmp_path_factory.getbasetemp(), students=40, seed=7)
    copy_database(template, tmp_path / "ssr.db")
    engine = db.make_engine(f"sqlite:///{tmp_path / 'ssr.db'}")
    yield engine
    engine.dispose()


def one_family_batch(engine: Engine) -> int:
    """A running batch for one family (the first school batch made for it is cancelled)."""
    operator = operators.resolve(engine, "caaspp")
    school_batch, item = first_school_batch(engine)
    ledger.set_batch_status(engine, Actor.of(operator), school_batch, BatchStatus.CANCELLED)
    return batches.create(
        engine,
        operator,
        batches.Selection(batches.Source.LIST, guardian_ids=(item.guardian_id,)),
        name="one family",
        password_delay=timedelta(0),
    )


def start_worker_stuck_in_data(config: Path, log: Path, sink: MailSink) -> subprocess.Popen[bytes]:
    """A real worker whose first message the relay holds in DATA for 30 s."""
    sink.delay = 30.0
    with log.open("ab") as out:
        process = subprocess.Popen(worker(config), stdout=out, stderr=out, start_new_session=True)
    try:
        wait_for(lambda: sink.data_count > 0, 60, "the worker reached DATA")
    except AssertionError:
        kill(process)  # never leave a worker behind a failed test
        raise
    return process


def on_screen(app: SSRConsoleApp) -> str:
    """The text actually drawn in the 80x24 terminal (what a clipped widget hides is not here)."""
    svg = app.export_screenshot()
    return html.unescape(" ".join(re.findall(r"<text[^>]*>(.*?)</text>", svg))).replace("\xa0", " ")


def kill(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)  # the worker and its encryption processes
    process.wait()


def test_a_batch_left_with_nothing_open_by_a_crash_finishes_without_an_operator(
    engine: Engine, tmp_path: Path, sink: MailSink
) -> None:
    operator = operators.resolve(engine, "caaspp")
    batch_id = one_family_batch(engine)
    config, log = write_config(tmp_path, sink, str(engine.url)), tmp_path / "worker.log"
    kill(start_worker_stuck_in_data(config, log, sink))  # killed mid-send of its only message
    sink.delay = 0

    finish(config, log)  # a restarted worker recovers, finds nothing to send and exits

    assert ledger.state_counts(engine, batch_id) == {ItemState.UNCERTAIN: 1}
    batch = batches.get_batch(engine, operator, batch_id)
    assert batch.status is BatchStatus.FINISHED and batch.finished_at is not None
    listed = next(b for b in batches.list_batches(engine, operator) if b.id == batch_id)
    assert (listed.status, listed.uncertain) == (BatchStatus.FINISHED, 1)
    # the operator's decision reopens it, as for an item left uncertain by the relay
    (uncertain,) = ledger.uncertain_items(engine, batch_id)
    ledger.resolve_uncertain(engine, Actor.of(operator), uncertain.id, ledger.Resolution.RESEND)  # type: ignore[arg-type]
    assert batches.get_batch(engine, operator, batch_id).status is BatchStatus.RUNNING


async def test_progress_screen_says_when_the_worker_died(
    engine: Engine, tmp_path: Path, settings: Settings, sink: MailSink
) -> None:
    batch_id = batches.create(
        engine, operators.resolve(engine, "caaspp"), batches.Selection(), name="Spring SSRs"
    )
    config, log = write_config(tmp_path, sink, str(engine.url)), tmp_path / "worker.log"
    process = await asyncio.to_thread(start_worker_stuck_in_data, config, log, sink)
    app = app_for(engine, settings)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await app.push_screen(BatchProgressScreen(app.ctx, batch_id))
            await settle(pilot)
            screen = app.screen
            assert "Worker: 1 running" in text(screen, "#figures")
            assert "no worker" not in text(screen, "#headline")

            killed_at = utcnow()
            await asyncio.to_thread(kill, process)
            # the screen reads the database once a second
            await until(lambda: "running, no worker" in text(screen, "#headline"), pilot)
            headline, figures = text(screen, "#headline"), text(screen, "#figures")
            assert "running, no worker" in headline
            assert "ETA none without a worker" in figures
            # since the last sign of the worker: its heartbeat or the item it claimed
            since = {f"{killed_at - timedelta(minutes=m):%H:%M} UTC" for m in (0, 1)}
            assert "No worker running since " in figures
            assert "No worker running since " in on_screen(app)  # not clipped at 80x24
            assert any(moment in figures for moment in since), figures
    finally:
        if process.poll() is None:
            kill(process)
        sink.delay = 0


async def test_the_first_eta_waits_for_a_measured_rate(engine: Engine, settings: Settings) -> None:
    """Two messages in a batch's first 6 seconds are not a rate: the ETA says "estimating" (it
    used to spread them over 5 minutes: "1h 13m" for a batch that took seconds)."""
    batch_id = batches.create(
        engine, operators.resolve(engine, "caaspp"), batches.Selection(), name="Spring SSRs"
    )
    with session_scope(engine) as session:  # a live worker: this process, beating now
        session.add(DeliveryWorker(id="here", host=socket.gethostname(), pid=os.getpid()))
        ids = list(
            session.exec(
                select(DeliveryItem.id)
                .where(DeliveryItem.batch_id == batch_id)
                .order_by(col(DeliveryItem.id))
            ).all()
        )

    def sent(item_ids: list[int], seconds_ago: float) -> None:
        with session_scope(engine) as session:
            session.execute(
                update(DeliveryItem)
                .where(col(DeliveryItem.id).in_(item_ids))
                .values(
                    state=ItemState.DOCUMENT_SENT,
                    document_sent_at=utcnow() - timedelta(seconds=seconds_ago),
                )
            )

    sent(ids[:2], 6)
    with session_scope(engine) as session:  # every state at once: the counts take two lines
        for item_id, state in zip(
            ids[-4:],
            (ItemState.PACKAGED, ItemState.SENDING_DOCUMENT, ItemState.FAILED, ItemState.UNCERTAIN),
            strict=True,
        ):
            session.execute(
                update(DeliveryItem).where(col(DeliveryItem.id) == item_id).values(state=state)
            )
    app = app_for(engine, settings)
    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(BatchProgressScreen(app.ctx, batch_id))
        await settle(pilot)
        figures = text(app.screen, "#figures")
        assert "Rate estimating" in figures and "ETA estimating" in figures, figures
        assert "Worker: 1 running" in figures and "h " not in figures.split("ETA")[1]
        assert "Worker: 1 running" in on_screen(app)  # not clipped at 80x24

        sent(ids[2:12], 5)  # twelve documents in six seconds: a rate, and a short ETA
        await until(lambda: "Rate estimating" not in text(app.screen, "#figures"), pilot)
        figures = text(app.screen, "#figures")
        assert "Rate estimating" not in figures and "ETA estimating" not in figures, figures
        assert "ETA under a minute" in figures or "ETA 1m" in figures, figures
