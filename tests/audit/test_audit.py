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
        event.hash = audit.stored_event_hash(event)
    result = audit.verify(chained)
    assert not result.ok and result.seq == 3


def test_concurrent_writers_keep_one_chain(migrated_url: str) -> None:
    engine = db.make_engine(migrated_url)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda start: _write(engine, 10, start), range(0, 40, 10)))
    result = audit.verify(engine)
    assert result.ok and result.events == 40
    engine.dispose()


def test_events_recorded_together_chain_like_single_ones(migrated_url: str) -> None:
    """record_many (the delivery worker's packages) interleaved with single records."""
    engine = db.make_engine(migrated_url)
    _write(engine, 2)
    with db.session_scope(engine) as session:
        entries = [("test.many", f"item {i}", {"i": i}) for i in range(3)]
        audit.record_many(session, Actor("system", "system"), entries)
        audit.record_many(session, Actor("system", "system"), [])
    _write(engine, 2, start=10)
    result = audit.verify(engine)
    assert result.ok and result.events == 7
    engine.dispose()


# --- anchors kept outside the database (issue 21) --------------------------------------------


def _anchor_now(url: str, capsys) -> str:  # type: ignore[no-untyped-def]
    assert main(["--database-url", url, "audit", "anchor"]) == 0
    printed = capsys.readouterr().out.strip()
    assert audit.Anchor.parse(printed)  # SEQ:HASH, as the mail carries it
    return printed


def _verify(url: str, capsys, *anchor: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    args = ["--anchor", anchor[0]] if anchor else []
    code = main(["--database-url", url, "audit", "verify", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _rehash_from(engine, first: int) -> None:  # type: ignore[no-untyped-def]
    """What a forger with write access does: recompute every hash from ``first`` on, and the head."""
    from sqlmodel import select

    from services.audit.tables import AuditEvent, AuditHead

    with db.session_scope(engine) as session:
        events = session.exec(select(AuditEvent).order_by(AuditEvent.seq)).all()
        prev = events[first - 2].hash if first > 1 else audit.GENESIS
        for event in events[first - 1 :]:
            event.prev_hash = prev
            event.hash = audit.stored_event_hash(event)
            prev = event.hash
            session.add(event)
        head = session.get(AuditHead, 1)
        assert head is not None
        head.seq, head.hash = events[-1].seq, prev
        session.add(head)


def test_anchor_catches_truncation_the_chain_alone_misses(migrated_url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    engine = db.make_engine(migrated_url)
    _write(engine, 5)
    anchored = _anchor_now(migrated_url, capsys)
    assert anchored.startswith("5:")
    _write(engine, 2, start=5)
    assert _verify(migrated_url, capsys, anchored)[0] == 0  # later events are fine
    # cut the end off, head included: every link that is left still fits
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM audit_event WHERE seq > 3")
        connection.exec_driver_sql(
            "UPDATE audit_head SET seq = 3, hash = (SELECT hash FROM audit_event WHERE seq = 3)"
        )
    assert _verify(migrated_url, capsys)[0] == 0  # the chain alone cannot tell
    code, said = _verify(migrated_url, capsys, anchored)
    assert code == 1
    assert "the log ends at event 3 but the anchor is event 5: events were cut off" in said


def test_anchor_catches_a_rewrite_with_every_hash_recomputed(migrated_url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    engine = db.make_engine(migrated_url)
    _write(engine, 5)
    anchored = _anchor_now(migrated_url, capsys)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE audit_event SET detail = '{\"i\":99}' WHERE seq = 2")
    _rehash_from(engine, 2)
    assert _verify(migrated_url, capsys)[0] == 0  # internally consistent again
    code, said = _verify(migrated_url, capsys, anchored)
    assert code == 1 and "event 5 is not the one anchored" in said and "rewritten" in said


def test_a_malformed_anchor_is_refused_with_a_sentence(chained, sqlite_url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    code, said = _verify(sqlite_url, capsys, "5-deadbeef")
    assert code == 2 and "is not an anchor: give it as SEQ:HASH" in said


def test_anchor_of_an_empty_log_says_so(migrated_sqlite_url: str, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--database-url", migrated_sqlite_url, "audit", "anchor"]) == 1
    assert "the audit log is empty: nothing to anchor yet" in capsys.readouterr().err
    code, said = _verify(migrated_sqlite_url, capsys, "3:" + "a" * 64)
    assert code == 1 and "the log ends at event 0 but the anchor is event 3" in said
