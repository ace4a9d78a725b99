"""A batch's status tells the truth after a crash: nothing left open means it is not "running".

The worker here is a real ``ssr-console worker`` process, SIGKILLed while the relay (aiosmtpd on
loopback) holds its only message in DATA; a restarted worker settles what it left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from services import batches, db, operators
from services import delivery_ledger as ledger
from services.audit import Actor
from services.delivery_ledger import BatchStatus, ItemState
from tests.delivery_harness import MailSink, copy_database, first_school_batch, seeded_template
from tests.test_delivery_crash import finish, worker, write_config


@pytest.fixture
def sink() -> Iterator[MailSink]:
    server = MailSink().start()
    yield server
    server.stop()


def test_a_batch_left_with_nothing_open_by_a_crash_finishes_without_an_operator(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, sink: MailSink
) -> None:
    template = seeded_template(tmp_path_factory.getbasetemp(), students=40, seed=7)
    copy_database(template, tmp_path / "ssr.db")
    url = f"sqlite:///{tmp_path / 'ssr.db'}"
    engine = db.make_engine(url)
    operator = operators.resolve(engine, "caaspp")
    school_batch, item = first_school_batch(engine)
    ledger.set_batch_status(engine, Actor.of(operator), school_batch, BatchStatus.CANCELLED)
    batch_id = batches.create(
        engine,
        operator,
        batches.Selection(batches.Source.LIST, guardian_ids=(item.guardian_id,)),
        name="one family",
        password_delay=timedelta(0),
    )
    config, log = write_config(tmp_path, sink, url), tmp_path / "worker.log"
    sink.delay = 30.0  # the relay holds the family's document in DATA: the kill lands mid-send
    with log.open("ab") as out:
        process = subprocess.Popen(worker(config), stdout=out, stderr=out, start_new_session=True)
    deadline = time.monotonic() + 60
    while sink.data_count == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sink.data_count == 1, "the worker never reached DATA"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
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
    engine.dispose()
