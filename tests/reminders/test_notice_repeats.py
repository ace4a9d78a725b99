"""What the README says about repeated notices is what a killed scheduler does.

A real ``ssr-console scheduler`` process SIGKILLs itself (``SSR_CONSOLE_FAULT``) after claiming its
notices but before handing the first to the relay, or after the relay (aiosmtpd on loopback)
accepted it but before the ledger recorded that; a restarted scheduler finishes the scan.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from services.audit.tables import AuditEvent
from services.core import db
from services.reminders.ledger import NoticeState
from tests.reminders.test_scheduler import EXPIRY, ROOT, config_file, console, notices
from tests.reminders_world import SmtpServer, at, build


@pytest.fixture
def smtp():  # type: ignore[no-untyped-def]
    with SmtpServer() as server:
        yield server


def test_readme_says_exactly_what_can_repeat() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "none doubled" not in readme
    for claim in (
        "same Message-ID",
        "in the relay's hands",
        "once per such stop",
        "notice.in_doubt",
    ):
        assert claim in readme


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "repeats"), [("after-claim", 0), ("after-send", 1)])
def test_only_the_notice_in_the_relays_hands_can_repeat(  # type: ignore[no-untyped-def]
    tmp_path, migrated_sqlite_url, smtp, fault, repeats
) -> None:
    engine = db.make_engine(migrated_sqlite_url)
    build(engine, EXPIRY)
    config = config_file(tmp_path, smtp)
    now = at(EXPIRY - timedelta(days=3)).isoformat()

    killed = console(migrated_sqlite_url, config, "scheduler", "--once", "--now", now, fault=fault)
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    # both notices were claimed; only one, at most, was handed to the relay
    left = [n for n in notices(engine) if n.state is NoticeState.SENDING]
    assert len(left) == 2 and sum(n.claimed_at is not None for n in left) == repeats

    restarted = console(migrated_sqlite_url, config, "scheduler", "--once", "--now", now)
    out, err = restarted.communicate(timeout=60)
    assert restarted.returncode == 0, err
    assert f"sent 2 (0 late, {repeats} in doubt)" in out

    received = Counter(str(m["Message-ID"]) for m in smtp.inbox.messages)
    due = [n for n in notices(engine) if n.offset == 3]
    assert all(n.state is NoticeState.SENT for n in due)
    assert set(received) == {n.message_id for n in due}
    repeated = [message_id for message_id, count in received.items() if count > 1]
    assert len(repeated) == repeats and max(received.values()) <= 2
    with Session(engine) as session:
        doubted = session.exec(
            select(AuditEvent.detail).where(AuditEvent.action == "notice.in_doubt")
        ).all()
    assert [json.loads(detail)["message_id"] for detail in doubted] == repeated
    engine.dispose()
