"""Acceptance: a batch goes to the loopback SMTP server, bounces of real-world shapes land in a real
IMAP mailbox (Dovecot on loopback), ``ssr-console worker``'s reader reads them, and exactly the
right families become bounced; a second read changes nothing; a mailbox that cannot be reached is
reported and tried again while the worker keeps running.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.bounces import mailbox
from services.bounces.tables import MailboxMessage, MailboxState, Outcome
from services.core.settings import Settings
from services.delivery.ledger import DeliveryItem, ItemState
from services.delivery.worker import Worker
from tests.bounces import samples
from tests.bounces.conftest import BOUNCES, FAST, Sent
from tests.bounces.dovecot import Dovecot
from tests.delivery_harness import Received


def read_with_the_worker(sent: Sent) -> None:
    """What ``ssr-console worker`` does: the mailbox reader runs beside the senders."""
    readers = mailbox.companions(sent.engine, sent.settings)
    worker = Worker(sent.engine, sent.settings, config=FAST, companions=readers)
    asyncio.run(worker.run(once=True))


def test_the_worker_reads_real_bounces_and_exactly_the_right_families_bounce(
    sent: Sent, dovecot: Dovecot
) -> None:
    families = sent.families()
    ids = sorted(families)
    assert len(ids) >= 11
    before = sent.states()
    assert set(before.values()) == {ItemState.DONE}

    def document(i: int) -> Received:
        return families[ids[i]]["document"]

    def about(i: int, step: str = "document") -> tuple[str, str, str]:
        received = families[ids[i]][step]
        return str(received.message["Message-ID"]), received.recipient, received.sender

    # every message went out with its own VERP return path
    assert all(r.sender.startswith("bounces+") for r in sent.sink.received)
    unknown = "<1780000000.1.2.ssr@district.org>"
    dovecot.append(
        samples.postfix_dsn(*about(0)[:2], BOUNCES),  # Message-ID quoted, sent to the plain box
        samples.gmail_dsn(*about(1)),
        samples.exchange_ndr(*about(2)),
        samples.exim_failure(*about(3)[:2], BOUNCES),
        samples.qmail_failure(*about(4)),
        samples.bare_dsn(document(5).recipient, document(5).sender),  # only VERP names it
        samples.postfix_dsn(*about(6), delayed=True),  # soft: still trying
        samples.out_of_office(*about(7)),
        samples.vacation_reply(*about(8)),
        samples.parent_reply(*about(9)),
        samples.exim_failure(unknown, "someone@example.org", BOUNCES),  # not our message
        samples.qmail_failure(*about(10, "password")[:2], BOUNCES),  # the password bounced
    )
    read_with_the_worker(sent)

    bounced = {ids[i] for i in (0, 1, 2, 3, 4, 5, 10)}
    after = sent.states()
    assert {i for i, s in after.items() if s is ItemState.BOUNCED} == bounced
    assert all(after[i] is ItemState.DONE for i in after if i not in bounced)
    with Session(sent.engine) as session:
        rows = session.exec(select(MailboxMessage).order_by(col(MailboxMessage.id))).all()
        items = {i: session.get(DeliveryItem, i) for i in bounced}
    outcomes = [r.outcome for r in rows]
    assert outcomes.count(Outcome.BOUNCED) == 7
    assert outcomes.count(Outcome.SOFT) == 1
    assert outcomes.count(Outcome.AUTO_REPLY) == 2
    assert outcomes.count(Outcome.OTHER) == 1
    assert outcomes.count(Outcome.UNMATCHED) == 1
    by_item = {r.item_id: r for r in rows if r.outcome is Outcome.BOUNCED}
    assert by_item[ids[5]].matched_by == "verp"
    assert by_item[ids[0]].matched_by == "message-id"
    assert by_item[ids[10]].step == "password"
    for item in items.values():
        assert item is not None and item.error and item.error.startswith("bounced: ")
        assert item.address in item.error, item.error
    assert "5.1.1" in (items[ids[0]].error or "")
    # processed messages were moved, none deleted
    assert dovecot.count("INBOX") == 0
    assert dovecot.count("Processed") == 12

    # a second read changes nothing, even when a bounce lands in the mailbox a second time
    dovecot.append(samples.gmail_dsn(*about(1)))
    tally = mailbox.read_once(sent.engine, mailbox.BounceConfig(**dovecot.settings(verp=True)))  # type: ignore[arg-type]
    assert (tally.read, tally.error) == (0, "")
    assert sent.states() == after
    with Session(sent.engine) as session:
        assert len(session.exec(select(MailboxMessage)).all()) == len(rows)
    assert dovecot.count("INBOX") == 0


def test_a_soft_bounce_fails_the_family_only_once_the_final_failure_arrives(
    sent: Sent, dovecot: Dovecot
) -> None:
    item_id, parts = next(iter(sent.families().items()))
    message_id, to = str(parts["document"].message["Message-ID"]), parts["document"].recipient
    config = mailbox.BounceConfig(**dovecot.settings())  # type: ignore[arg-type]
    dovecot.append(samples.postfix_dsn(message_id, to, BOUNCES, delayed=True))
    assert mailbox.read_once(sent.engine, config).count(Outcome.SOFT) == 1
    assert sent.states()[item_id] is ItemState.DONE
    dovecot.append(samples.postfix_dsn(message_id, to, BOUNCES))
    assert mailbox.read_once(sent.engine, config).count(Outcome.BOUNCED) == 1
    assert sent.states()[item_id] is ItemState.BOUNCED


async def test_an_unreachable_mailbox_is_reported_and_tried_again_while_the_worker_runs(
    tmp_path: Path,
    engine: Engine,
    certificate: tuple[Path, Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ssr.bounces")
    later = Dovecot(tmp_path / "dovecot", *certificate)  # its port has nothing on it yet
    later.folder.mkdir()
    settings = Settings(
        database_url=str(engine.url),
        data_dir=tmp_path / "data",
        extra={"bounces": later.settings(interval_seconds=0.2)},
    )
    config = mailbox.BounceConfig.from_settings(settings)
    assert config is not None
    worker = Worker(
        engine,
        settings,
        config=FAST,
        companions=mailbox.companions(engine, settings),
    )
    running = asyncio.create_task(worker.run())

    def state() -> MailboxState | None:
        with Session(engine) as session:
            return session.get(MailboxState, config.mailbox)

    try:
        await until(lambda: (row := state()) is not None and row.down_since is not None)
        assert "cannot be read" in caplog.text and config.mailbox in caplog.text
        assert later.settings()["password"] not in caplog.text
        await until(lambda: caplog.text.count("cannot be read") >= 2)  # tried again
        assert not running.done()  # the worker did not stop
        await asyncio.to_thread(later.start)
        await until(lambda: (row := state()) is not None and row.down_since is None)
        assert state().last_read_at is not None  # type: ignore[union-attr]
        assert not running.done()
    finally:
        worker.stop()
        await asyncio.wait_for(running, timeout=30)
        later.stop()


async def until(condition: object, timeout: float = 30.0) -> None:
    """Wait for ``condition()`` to hold, looking every 50 ms."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def test_a_pop3_mailbox_is_read_the_same_way_and_emptied_only_of_what_was_recorded(
    sent: Sent, dovecot: Dovecot
) -> None:
    families = sent.families()
    ids = sorted(families)

    def about(i: int) -> tuple[str, str, str]:
        received = families[ids[i]]["document"]
        return str(received.message["Message-ID"]), received.recipient, received.sender

    dovecot.append(
        samples.exim_failure(*about(0)),
        samples.out_of_office(*about(1)),
        samples.postfix_dsn(*about(2), delayed=True),
    )
    config = mailbox.BounceConfig(
        **{**dovecot.settings(verp=True), "protocol": "pop3", "port": dovecot.pop3_port}  # type: ignore[arg-type]
    )
    tally = mailbox.read_once(sent.engine, config)
    assert (tally.read, tally.error) == (3, "")
    assert [tally.count(o) for o in (Outcome.BOUNCED, Outcome.AUTO_REPLY, Outcome.SOFT)] == [
        1,
        1,
        1,
    ]
    states = sent.states()
    assert states[ids[0]] is ItemState.BOUNCED
    assert {states[ids[1]], states[ids[2]]} == {ItemState.DONE}
    assert dovecot.count("INBOX") == 0  # recorded, then deleted
    again = mailbox.read_once(sent.engine, config)
    assert (again.read, again.error) == (0, "") and sent.states() == states
