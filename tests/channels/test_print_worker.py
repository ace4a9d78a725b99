"""Print batches are printed by ``ssr-console worker``, not by the console session that made them:
a created batch waits in the database, ``worker --once`` prints it (in-process and as a real
process), and a batch left half-printed by a dead worker is resumed by the next one."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import Session

from services.channels import batches as channel_batches
from services.channels import print_batch
from services.channels.batches import ChannelBatch
from services.core.errors import InvalidInput
from services.delivery.ledger import BatchStatus
from services.delivery.worker import Worker, WorkerConfig
from services.plan import coverage
from tests.channel_world import World, pdf_pages, world

FAST = WorkerConfig(processes=1, poll_seconds=0.05, heartbeat_seconds=1.0, once_horizon_seconds=5)


@pytest.fixture
def demo(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> World:
    return world(tmp_path_factory.getbasetemp(), tmp_path)


def create(w: World) -> int:
    batch = print_batch.create(w.engine, w.operator(), name="Print", who=coverage.Who.ALL)
    assert batch.id is not None
    assert print_batch.waiting(w.engine)
    return batch.id


def assert_printed(w: World, batch_id: int) -> None:
    batch = channel_batches.get(w.engine, w.operator(), batch_id)
    assert batch.status is BatchStatus.FINISHED
    assert "print" not in channel_batches.details(batch)
    assert not print_batch.waiting(w.engine)
    folder = w.settings.data_dir / "print" / f"batch-{batch_id}"
    files = sorted(folder.glob(f"print-{batch_id}-[0-9]*.pdf"))
    with (folder / f"print-{batch_id}-manifest.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert files and rows
    assert sum(int(r["pages"]) for r in rows) == batch.pages
    # each family on sheets of its own: a blank page after an odd count (duplex printers)
    assert sum(pdf_pages(f) for f in files) == sum(
        int(r["pages"]) // 2 * 2 + int(r["pages"]) % 2 * 2 for r in rows
    )
    assert len(rows) == batch.families  # every family listed once, none printed twice


async def test_worker_once_prints_a_queued_batch(demo: World) -> None:
    w = demo
    batch_id = create(w)
    await Worker(w.engine, w.settings, config=FAST).run(once=True)
    assert_printed(w, batch_id)
    # A finished batch cannot be queued again: a sentence, not a traceback.
    with pytest.raises(InvalidInput, match="finished: nothing to print"):
        print_batch.queue(w.engine, w.operator(), batch_id)


async def test_a_batch_a_dead_worker_was_printing_is_resumed(demo: World) -> None:
    w = demo
    batch_id = create(w)
    with Session(w.engine) as session:
        batch = session.get(ChannelBatch, batch_id)
        assert batch is not None
        detail = channel_batches.details(batch)
        batch.detail = json.dumps({**detail, "print": "printing", "printer": "gone:1:x"})
        session.add(batch)
        session.commit()
    await Worker(w.engine, w.settings, config=FAST).run(once=True)
    assert_printed(w, batch_id)


def test_worker_process_prints_after_the_session_is_gone(demo: World) -> None:
    w = demo
    batch_id = create(w)
    w.engine.dispose()
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "ssr-console"),
            "--database-url",
            w.settings.database_url,
            "--data-dir",
            str(w.settings.data_dir),
            "worker",
            "--once",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert_printed(w, batch_id)
