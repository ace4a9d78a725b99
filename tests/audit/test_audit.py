"""The audit chain: every event linked to the last, tampering found by `ssr-console audit verify`."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from console.cli import main
from services.audit import log as audit
from services.audit.log import Actor
from services.core import db


def _write(engine, count: int, start: int = 0) -> None:  # type: ignore[no-untyped-def]
    for i in range(start, start + count):
        with db.session_scope(engine) as session:
            audit.record(
                session, Actor("caaspp", "lea_caaspp", 1), "test.action", f"item {i}", {"i": i}
            )


@pytest.fixture
def chained(migrated_sqlite_url: str):  # type: ignore[no-untyped-def]
    engine = db.make_engine(migrated_sqlite_url)
    _write(engine, 5)
    return engine


def test_intact_chain_verifies(chained, sqlite_url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    assert audit.verify(chained).ok
    assert main(["--database-url", sqlite_url, "audit", "verify"]) == 0
    assert "intact: 5 events" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        ("UPDATE audit_event SET detail = '{\"i\":99}' WHERE seq = 3", "event 3 was altered"),
        ("UPDATE audit_event SET operator = 'helpdesk' WHERE seq = 1", "event 1 was altered"),
        ("DELETE FROM audit_event WHERE seq = 2", "event 2 is missing"),
        ("DELETE FROM audit_event WHERE seq = 5", "events after 4 were removed"),
    ],
)
def test_tampered_row_is_detected(
    chained, sqlite_url: str, capsys, tamper: str, problem: str
) -> None:  # type: ignore[no-untyped-def]
    with chained.begin() as connection:
        connection.exec_driver_sql(tamper)
    result = audit.verify(chained)
    assert not result.ok and result.problem == problem
    assert main(["--database-url", sqlite_url, "audit", "verify"]) == 1
    assert "TAMPERED" in capsys.readouterr().err


def test_rewritten_row_with_fresh_hash_is_still_detected(chained) -> None:  # type: ignore[no-untyped-def]
    """Recomputing a forged row's own hash is not enough: the next row's link breaks."""
    from sqlmodel import select

    from services.audit.tables import AuditEvent

    with db.session_scope(chained) as session:
        event = session.exec(select(AuditEvent).where(AuditEvent.seq == 2)).one()
        event.detail = '{"i":42}'
        event.hash = audit.event_hash(
            event.seq,
            event.at,
            event.operator,
            event.role,
            event.lea_id,
            event.action,
            event.target,
            event.detail,
            event.prev_hash,
        )
    result = audit.verify(chained)
    assert not result.ok and result.seq == 3


def test_concurrent_writers_keep_one_chain(migrated_url: str) -> None:
    engine = db.make_engine(migrated_url)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda start: _write(engine, 10, start), range(0, 40, 10)))
    result = audit.verify(engine)
    assert result.ok and result.events == 40
    engine.dispose()
