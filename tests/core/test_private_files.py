"""Student data is its owner's alone: after a whole demo season, nothing under the data directory
can be read or written by group or others.

Every step runs with the umask of a normal account (022), so the console itself, not the test,
sets the modes: seed, import, a secure email batch (to a loopback SMTP server) and a print batch
through ``ssr-console worker``, ``scheduler --once`` and ``serve-ssh`` as real processes; the ETS
order list and a reports CSV export (commands the console runs in its own session) in this
process, the export through the Reports screen. The data directory was made 0755 beforehand: the
first command tightens it and says so.
"""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, col
from sqlmodel import select as sql_select

from screens.reports import ReportsScreen
from services.access import operators
from services.channels import paper_order, print_batch
from services.channels.batches import Scope
from services.channels.print_batch import Handling, PrintOptions
from services.core import db
from services.core.settings import Settings
from services.delivery.ledger import ItemState, state_counts
from services.plan import coverage
from services.roster.tables import School, Student
from tests.delivery_harness import MailSink, first_school_batch
from tests.intake_fixtures import ssr
from tests.pilot import app_for
from widgets.form_dialog import FormDialog

ROOT = Path(__file__).resolve().parents[2]
OPEN_TO_OTHERS = 0o077


@pytest.fixture
def normal_umask() -> Iterator[None]:
    """The umask of an ordinary account, for this process and every process it starts."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


@pytest.fixture
def sink() -> Iterator[MailSink]:
    server = MailSink().start()
    try:
        yield server
    finally:
        server.stop()


def cli(config: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSR_")}
    done = subprocess.run(
        [sys.executable, "-m", "console.cli", "--config", str(config), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def serve_ssh_once(config: Path, tmp_path: Path) -> str:
    """Start ``serve-ssh`` until it listens (it makes its host key), then stop it."""
    keys = tmp_path / "authorized_keys"
    keys.write_text("")
    argv = [sys.executable, "-m", "console.cli", "--config", str(config), "serve-ssh"]
    server = subprocess.Popen(
        [*argv, "--port", "0", "--authorized-keys", str(keys)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        ready, _, _ = select.select([server.stdout], [], [], 60)
        banner = server.stdout.readline() if ready else ""
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    return banner


async def export_from_reports_screen(engine, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    app = app_for(engine, settings)
    async with app.run_test(size=(80, 24)) as pilot:
        for keys in ("r", "x", "enter"):
            await pilot.press(keys)
            await pilot.pause()
            await app.workers.wait_for_complete()
            await pilot.pause()
            if keys == "r":
                assert isinstance(app.screen, ReportsScreen)
            if keys == "x":
                assert isinstance(app.screen, FormDialog)


def open_to_others(root: Path) -> list[str]:
    """Every folder and file under ``root`` (and root) that group or others may use."""
    found = []
    for folder, dirs, files in os.walk(root):
        for path in [Path(folder), *(Path(folder) / name for name in dirs + files)]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            if mode & OPEN_TO_OTHERS and not path.is_symlink():
                found.append(f"{path.relative_to(root.parent)} {mode:o}")
    return sorted(set(found))


@pytest.mark.slow(minutes=3)
async def test_a_demo_season_leaves_nothing_readable_by_others(
    tmp_path: Path, normal_umask: None, sink: MailSink
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    assert stat.S_IMODE(data.stat().st_mode) == 0o755
    url = f"sqlite:///{data / 'ssr-console.db'}"
    config = tmp_path / "config.toml"
    config.write_text(
        f'data_dir = "{data}"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {sink.port}\nfrom_address = "ssr@svusd.example"\n'
        "[delivery]\nprocesses = 1\npoll_seconds = 0.05\nonce_horizon_seconds = 3\n"
    )
    config.chmod(0o600)
    settings = Settings(url, data)

    seeded = cli(config, "seed", "--students", "24", "--seed", "15")
    assert (
        f"The data directory {data} was open to other accounts on this server (mode 755); "
        "it is now 0700, for its owner only" in seeded.stderr
    )
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert "was open" not in cli(config, "db", "current").stderr  # said once, when it happened

    engine = db.make_engine(url)  # held open: the -wal and -shm files exist while it is
    with Session(engine) as session:
        ssids = session.exec(sql_select(Student.ssid).order_by(col(Student.id)).limit(3)).all()
    caaspp = operators.resolve(engine, "caaspp")
    email_batch, _ = first_school_batch(engine)
    with Session(engine) as session:
        last_school = session.exec(sql_select(School.id).order_by(col(School.id).desc())).first()
    printing = print_batch.create(  # one school prints locally, the rest is ordered from ETS
        engine,
        caaspp,
        name="Hand out",
        scope=Scope(school_id=last_school),
        who=coverage.Who.ALL,
        options=PrintOptions(handling=Handling.HAND_OUT),
    )
    cli(config, "worker", "--once")
    assert set(state_counts(engine, email_batch)) == {ItemState.DONE} and sink.received
    manifest = data / "print" / f"batch-{printing.id}" / f"print-{printing.id}-manifest.csv"
    assert manifest.exists()

    order = paper_order.create(engine, caaspp, name="ETS", who=coverage.Who.ALL)
    assert order.id is not None
    order_list = data / "orders" / f"ets-order-{order.id}.csv"  # where the Paper screen puts it
    assert paper_order.export_csv(engine, caaspp, order.id, order_list) > 0
    await export_from_reports_screen(engine, settings)
    assert list((data / "exports").glob("*.csv"))

    inbox = data / "inbox"  # last year's SSRs of three students, downloaded from TOMS and copied
    inbox.mkdir(mode=0o700)  # into the intake folder by the console's account (umask 077)
    for ssid in ssids:
        report = inbox / f"{ssid}_CAASPP_SB_2025_en.pdf"
        report.write_bytes(ssr(ssid, year=2025))
        report.chmod(0o600)
    imported = cli(config, "import", str(inbox))
    assert "3 stored" in imported.stdout, imported.stdout

    cli(config, "scheduler", "--once")
    assert "SSH server on" in serve_ssh_once(config, tmp_path)

    written = {p.name for p in data.rglob("*")}
    assert {"ssr-console.db", "ssr-console.db-wal", "ssr-console.db-shm"} <= written
    assert {"ssh_host_ed25519_key", "delivery-vault.key", "print", "orders", "exports"} <= written
    assert {"outbox", "sha256"} <= written  # the worker's packages, the import's store
    assert open_to_others(data) == []
    engine.dispose()


def test_a_database_an_older_version_left_open_is_made_private(
    tmp_path: Path, normal_umask: None
) -> None:
    path = tmp_path / "old" / "ssr.db"
    path.parent.mkdir()
    sqlite3.connect(path).execute("PRAGMA journal_mode=WAL").close()
    companions = [path.with_name(path.name + s) for s in ("", "-wal", "-shm")]
    for file in companions:
        file.touch()
        file.chmod(0o644)
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    assert [stat.S_IMODE(f.stat().st_mode) for f in companions] == [0o600] * 3
    engine.dispose()
    fresh = tmp_path / "new" / "deeper" / "ssr.db"  # folders made for it are private too
    engine = db.make_engine(f"sqlite:///{fresh}")
    db.upgrade(engine)
    assert open_to_others(tmp_path / "new") == []
    engine.dispose()
