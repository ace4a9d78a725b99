"""A worker whose database connections are cut mid-batch waits and reconnects instead of ending.

PostgreSQL ends the sessions (``pg_terminate_backend``, what a server restart or a failover does
to them) while a real ``ssr-console worker`` process sends a batch through a real SMTP server. The
worker says in its log that it waits and reconnects, finishes on its own, and every family gets
its document and its password exactly once, the PDF opening with that password.
"""

from __future__ import annotations

import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from services.access import operators
from services.core import db
from services.core.settings import Settings
from services.delivery import batches, ledger
from services.delivery.ledger import ItemState
from tests.databases import SeedDemo
from tests.delivery_harness import MailSink, check_every_document, worker, write_config

TERMINATE = text(
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


@pytest.mark.postgres
def test_terminated_connections_mid_batch_are_waited_out(
    tmp_path: Path, pg_url: str, sink: MailSink, seed_demo: SeedDemo
) -> None:
    engine = db.make_engine(pg_url)
    seed_demo(engine, Settings(pg_url, tmp_path / "data"), students=40, seed=7, pdfs=True)
    operator = operators.resolve(engine, "caaspp")
    batch_id = batches.create(
        engine, operator, batches.Selection(), name="outage", password_delay=timedelta(0)
    )
    families = sum(ledger.state_counts(engine, batch_id).values())
    sink.delay = 0.05  # a batch of a few seconds, for the cuts to land in
    config, log = write_config(tmp_path, sink, pg_url), tmp_path / "worker.log"
    with log.open("ab") as out:
        process = subprocess.Popen(worker(config, "--once"), stdout=out, stderr=out)
    cuts, deadline = 0, time.monotonic() + 120
    try:
        # cut every session of the worker until it has reconnected three times (or ended)
        while process.poll() is None and time.monotonic() < deadline:
            if sink.data_count and log.read_text().count("then reconnecting") < 3:
                with engine.connect() as connection:
                    cuts += connection.execute(TERMINATE).scalar_one()
                    connection.commit()
            time.sleep(0.1)
        status = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
    said = log.read_text()
    assert status == 0, said[-2000:]
    assert cuts and "database unavailable" in said and "reachable again" in said
    assert ledger.state_counts(engine, batch_id) == {ItemState.DONE: families}
    received = sink.by_item()
    assert len(received) == families
    for item_id, parts in received.items():
        assert len(parts["document"]) == 1 and len(parts["password"]) == 1, item_id
    assert check_every_document(tmp_path, sink) == families
    engine.dispose()
