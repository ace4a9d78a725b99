"""SMTP faults against a real aiosmtpd server: refused connection, 421, 451, 550, a slow server, a
server that never answers, and the per-minute and per-day caps on a controllable clock."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.access import operators
from services.audit import log as audit
from services.audit.log import Actor
from services.audit.tables import AuditEvent
from services.core import db
from services.core.settings import Settings
from services.delivery import batches, ledger
from services.delivery.ledger import DeliveryItem, ItemState, Resolution
from services.delivery.worker import Worker, WorkerConfig
from tests.delivery_harness import (
    MailSink,
    check_family,
    copy_database,
    seeded_template,
    smtp_settings,
)

FAST = WorkerConfig(processes=1, poll_seconds=0.05, heartbeat_seconds=1.0, once_horizon_seconds=5)
GRADE = 3  # a grade batch keeps these tests to a handful of families


@pytest.fixture
def engine(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Iterator[Engine]:
    template = seeded_template(tmp_path_factory.getbasetemp(), students=40, seed=7)
    copy_database(template, tmp_path / "ssr.db")
    engine = db.make_engine(f"sqlite:///{tmp_path / 'ssr.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def sink() -> Iterator[MailSink]:
    server = MailSink()
    yield server
    server.stop()


def settings(tmp_path: Path, sink: MailSink, **smtp: object) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'ssr.db'}",
        data_dir=tmp_path / "data",
        extra={"smtp": smtp_settings(sink, **smtp)},
    )


def make_batch(engine: Engine) -> int:
    operator = operators.resolve(engine, "caaspp")
    return batches.create(
        engine,
        operator,
        batches.Selection(source=batches.Source.GRADE, grade=GRADE),
        name="faults",
        password_delay=timedelta(0),
    )


def items(engine: Engine, batch_id: int) -> list[DeliveryItem]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(DeliveryItem)
                .where(DeliveryItem.batch_id == batch_id)
                .order_by(DeliveryItem.id)  # type: ignore[arg-type]
            ).all()
        )


def exactly_once(sink: MailSink, engine: Engine, batch_id: int) -> None:
    received = sink.by_item()
    for item in items(engine, batch_id):
        assert item.state == ItemState.DONE, (item.id, item.state, item.error)
        parts = received[item.id]  # type: ignore[index]
        assert len(parts["document"]) == 1 and len(parts["password"]) == 1


async def test_refused_connection_is_retried_until_the_relay_is_back(
    engine: Engine, tmp_path: Path, sink: MailSink
) -> None:
    batch_id = make_batch(engine)
    # max_attempts=1: were a refused connection counted as the family's attempt, it would fail
    # backoff_max_seconds keeps the relay's backoff under the run's 5 s horizon however many
    # refusals fit in the outage
    config = settings(tmp_path, sink, max_attempts=1, backoff_max_seconds=0.5)
    worker = Worker(engine, config, config=FAST)
    run = asyncio.create_task(worker.run(once=True))
    # nothing listens on the port yet: connections are refused until the worker says so
    for _ in range(600):
        if any("unreachable" in (i.error or "") for i in items(engine, batch_id)) or run.done():
            break
        await asyncio.sleep(0.05)
    assert not run.done()
    assert all(i.document_sent_at is None for i in items(engine, batch_id))
    assert any("unreachable" in (i.error or "") for i in items(engine, batch_id))
    sink.start()
    tally = await asyncio.wait_for(run, 60)
    assert tally.retried > 0 and tally.failed == 0
    exactly_once(sink, engine, batch_id)
    with Session(engine) as session:
        assert not session.exec(
            select(AuditEvent).where(AuditEvent.action == "delivery.retry")
        ).all()


async def test_421_and_451_mid_batch_are_retried_without_duplicates(
    engine: Engine, tmp_path: Path, sink: MailSink
) -> None:
    replies = {3: "421 4.3.2 Service shutting down", 4: "451 4.3.0 Try again later"}
    replies[6] = replies[4]
    sink.data_rules.append(lambda rcpt, n: replies.get(n))
    sink.start()
    batch_id = make_batch(engine)
    tally = await Worker(engine, settings(tmp_path, sink), config=FAST).run(once=True)
    assert tally.retried == 3 and tally.failed == 0
    exactly_once(sink, engine, batch_id)
    # each 451 is in the family's history with the server's words; the 421 (the relay closing
    # the connection) is about the relay, not the family, and is not
    with Session(engine) as session:
        retries = session.exec(
            select(AuditEvent.detail).where(AuditEvent.action == "delivery.retry")
        ).all()
    assert len(retries) == 2 and all("451 4.3.0 Try again later" in d for d in retries)


async def test_550_fails_the_item_with_the_servers_words_and_retry_failed_resends(
    engine: Engine, tmp_path: Path, sink: MailSink
) -> None:
    batch_id = make_batch(engine)
    victims = items(engine, batch_id)
    no_mailbox, refuses_password = victims[1].address, victims[2].address
    sink.rcpt_rules.append(
        lambda rcpt, n: f"550 5.1.1 <{rcpt}>: mailbox unavailable" if rcpt == no_mailbox else None
    )
    password_refused = True

    def refuse_password(rcpt: str, n: int) -> str | None:
        sent = sink.by_item()
        first = victims[2].id
        if rcpt == refuses_password and password_refused and sent.get(first, {}).get("document"):
            return "554 5.7.1 Message rejected as spam"
        return None

    sink.data_rules.append(refuse_password)
    sink.start()
    config = settings(tmp_path, sink)
    await Worker(engine, config, config=FAST).run(once=True)
    states = {i.id: i for i in items(engine, batch_id)}
    failed = states[victims[1].id]
    assert failed.state == ItemState.FAILED
    assert "550 5.1.1" in (failed.error or "") and "mailbox unavailable" in (failed.error or "")
    spam = states[victims[2].id]
    assert spam.state == ItemState.FAILED and "554 5.7.1" in (spam.error or "")
    assert spam.document_sent_at is not None and spam.sealed_password is not None
    received = sink.by_item()
    assert victims[1].id not in received, "no password without its document"
    assert received[victims[2].id]["password"] == []

    password_refused = False
    sink.rcpt_rules.clear()
    operator = operators.resolve(engine, "caaspp")
    assert ledger.retry_failed(engine, Actor.of(operator), batch_id) == 2
    await Worker(engine, config, config=FAST).run(once=True)
    exactly_once(sink, engine, batch_id)
    assert len(sink.by_item()[victims[2].id]["document"]) == 1, "the document was not resent"


async def test_slow_server_within_the_timeout_delivers_everything(
    engine: Engine, tmp_path: Path, sink: MailSink
) -> None:
    sink.delay = 0.3
    sink.start()
    batch_id = make_batch(engine)
    await Worker(engine, settings(tmp_path, sink, timeout=5.0), config=FAST).run(once=True)
    exactly_once(sink, engine, batch_id)


async def test_no_answer_after_data_is_uncertain_then_resolved_by_an_operator(
    engine: Engine, tmp_path: Path, sink: MailSink
) -> None:
    sink.delay = 1.5  # longer than the client waits for the answer to DATA
    sink.start()
    batch_id = make_batch(engine)
    config = settings(tmp_path, sink, timeout=0.5, connections=1)
    tally = await Worker(engine, config, config=FAST).run(once=True)
    assert tally.uncertain == len(items(engine, batch_id)) and tally.passwords == 0
    sink.delay = 0
    operator = operators.resolve(engine, "caaspp")
    uncertain = ledger.uncertain_items(engine, batch_id)
    assert {i.uncertain_step for i in uncertain} == {"document"}
    assert all(i.password_sent_at is None for i in items(engine, batch_id))
    for item in uncertain:  # the operator checked the relay log: nothing was queued
        ledger.resolve_uncertain(engine, Actor.of(operator), item.id, Resolution.RESEND)  # type: ignore[arg-type]
    await Worker(engine, settings(tmp_path, sink), config=FAST).run(once=True)
    exactly_once(sink, engine, batch_id)


class Clock:
    """A clock the test moves by hand; the worker reads it for caps and due times."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def test_daily_cap_holds_across_restarts_and_resumes_the_next_day(
    engine: Engine, tmp_path: Path, sink: MailSink
) -> None:
    sink.start()
    batch_id = make_batch(engine)
    families = len(items(engine, batch_id))
    assert families >= 3
    clock = Clock((datetime.now(UTC) + timedelta(days=1)).replace(hour=20, minute=0))
    config = settings(tmp_path, sink, per_day=3)
    sent_per_day = []
    for _ in range(2 * families):
        before = len(sink.received)
        # a fresh worker each time: the count must come from the database, not memory
        await Worker(engine, config, clock=clock, config=FAST).run(once=True)
        await Worker(engine, config, clock=clock, config=FAST).run(once=True)
        sent_per_day.append(len(sink.received) - before)
        if all(i.state == ItemState.DONE for i in items(engine, batch_id)):
            break
        clock.now += timedelta(days=1)
    assert all(n == 3 for n in sent_per_day[:-1]) and 0 < sent_per_day[-1] <= 3, sent_per_day
    assert sum(sent_per_day) == 2 * families
    exactly_once(sink, engine, batch_id)
    received = sink.by_item()
    assert all(
        parts["document"][0].index < parts["password"][0].index for parts in received.values()
    )


async def test_per_minute_cap_waits_for_the_next_minute(
    engine: Engine, tmp_path: Path, sink: MailSink
) -> None:
    sink.start()
    batch_id = make_batch(engine)
    clock = Clock((datetime.now(UTC) + timedelta(minutes=1)).replace(second=0))
    config = settings(tmp_path, sink, per_minute=2)
    await Worker(engine, config, clock=clock, config=FAST).run(once=True)
    assert len(sink.received) == 2
    clock.now += timedelta(minutes=1)
    await Worker(engine, config, clock=clock, config=FAST).run(once=True)
    assert len(sink.received) == 4
    operator = operators.resolve(engine, "caaspp")
    progress = batches.progress(engine, operator, batch_id, per_minute_cap=2, now=clock.now)
    assert progress.eta is not None and progress.remaining_messages > 0


async def test_a_replaced_vault_key_repackages_unsent_families_and_retry_recovers_the_sent_one(
    engine: Engine, tmp_path: Path, sink: MailSink
) -> None:
    """Packages sealed under the old key: a family whose document is out fails (its password is
    lost) and "retry failed" sends it a new package and password; the others are packaged again
    under the new key before their document goes, so none gets a PDF it cannot open."""
    from cryptography.fernet import Fernet

    sink.start()
    batch_id = make_batch(engine)
    clock = Clock((datetime.now(UTC) + timedelta(days=1)).replace(hour=12))

    def config(key: bytes, **smtp: object) -> Settings:
        base = settings(tmp_path, sink, **smtp)
        return Settings(
            database_url=base.database_url,
            data_dir=base.data_dir,
            extra={**base.extra, "delivery": {"vault_key": key.decode()}},
        )

    first, second = Fernet.generate_key(), Fernet.generate_key()
    await Worker(engine, config(first, per_day=1), clock=clock, config=FAST).run(once=True)
    before = {i.id: i.state for i in items(engine, batch_id)}
    [sent] = [item_id for item_id, state in before.items() if state == ItemState.DOCUMENT_SENT]
    waiting = [item_id for item_id, state in before.items() if state == ItemState.PACKAGED]
    assert waiting, "the first worker packages ahead of sending"
    await Worker(engine, config(second), clock=clock, config=FAST).run(once=True)
    after = {i.id: i for i in items(engine, batch_id)}
    failed = after[sent]
    assert failed.state == ItemState.FAILED and "vault key" in (failed.error or "")
    assert failed.sealed_password is None and "retry" in (failed.error or "")
    received = sink.by_item()
    assert received[sent]["password"] == []
    for item_id in waiting:  # repackaged under the new key, then delivered once
        assert after[item_id].state == ItemState.DONE
        parts = received[item_id]
        assert len(parts["document"]) == 1 and len(parts["password"]) == 1
        check_family(tmp_path, parts["document"][0], parts["password"][0])
    with Session(engine) as session:
        repackaged = session.exec(
            select(AuditEvent.target).where(AuditEvent.action == "delivery.repackaged")
        ).all()
    assert sorted(repackaged) == sorted(f"delivery_item:{i}" for i in waiting)

    operator = operators.resolve(engine, "caaspp")
    assert ledger.retry_failed(engine, Actor.of(operator), batch_id) == 1
    await Worker(engine, config(second), clock=clock, config=FAST).run(once=True)
    assert {i.id: i for i in items(engine, batch_id)}[sent].state == ItemState.DONE
    parts = sink.by_item()[sent]
    assert len(parts["document"]) == 2 and len(parts["password"]) == 1
    check_family(tmp_path, parts["document"][1], parts["password"][0])
    assert audit.verify(engine).ok


async def test_a_package_deleted_before_its_document_is_made_again(
    engine: Engine, tmp_path: Path, sink: MailSink
) -> None:
    """Package files lost before sending (a cleaned disk, a restored server): nothing is sent from
    them; the family is packaged again under a new password and gets one document and one password."""
    import shutil

    sink.start()
    batch_id = make_batch(engine)
    clock = Clock((datetime.now(UTC) + timedelta(days=1)).replace(hour=12))
    config = settings(tmp_path, sink)
    await Worker(engine, settings(tmp_path, sink, per_day=1), clock=clock, config=FAST).run(
        once=True
    )
    packaged = [i for i in items(engine, batch_id) if i.state == ItemState.PACKAGED]
    for item in packaged:
        shutil.rmtree(item.package_dir or "")
    await Worker(engine, config, clock=clock, config=FAST).run(once=True)
    received = sink.by_item()
    for item in packaged:
        parts = received[item.id]  # type: ignore[index]
        assert len(parts["document"]) == 1 and len(parts["password"]) == 1
        check_family(tmp_path, parts["document"][0], parts["password"][0])
    assert all(i.state == ItemState.DONE for i in items(engine, batch_id))


async def test_a_package_replaced_on_disk_is_never_sent_and_is_made_again(
    engine: Engine, tmp_path: Path, sink: MailSink
) -> None:
    """Package files swapped after they were verified (a plain PDF, one encrypted under another
    password, the package with one byte changed): none of those bytes goes out; each family is
    packaged again and gets one document, which its own password opens."""
    import pikepdf

    from services.delivery import packaging

    sink.start()
    batch_id = make_batch(engine)
    clock = Clock((datetime.now(UTC) + timedelta(days=1)).replace(hour=12))
    await Worker(engine, settings(tmp_path, sink, per_day=1), clock=clock, config=FAST).run(
        once=True
    )
    packaged = [i for i in items(engine, batch_id) if i.state == ItemState.PACKAGED][:3]
    assert len(packaged) == 3
    plain, other, altered = (next(Path(i.package_dir or "").glob("*.pdf")) for i in packaged)
    with pikepdf.new() as pdf:
        pdf.add_blank_page()
        pdf.save(tmp_path / "plain.pdf")
    packaging.package([tmp_path / "plain.pdf"], tmp_path / "other.pdf", "other-words-entirely")
    plain.write_bytes((tmp_path / "plain.pdf").read_bytes())
    other.write_bytes((tmp_path / "other.pdf").read_bytes())
    changed = bytearray(altered.read_bytes())
    changed[len(changed) // 2] ^= 1
    altered.write_bytes(bytes(changed))
    swapped = {path.read_bytes() for path in (plain, other, altered)}
    await Worker(engine, settings(tmp_path, sink), clock=clock, config=FAST).run(once=True)
    received = sink.by_item()
    for item in packaged:
        parts = received[item.id]  # type: ignore[index]
        assert len(parts["document"]) == 1 and len(parts["password"]) == 1
        assert not {data for _, data in parts["document"][0].attachments()} & swapped
        check_family(tmp_path, parts["document"][0], parts["password"][0])
    assert all(i.state == ItemState.DONE for i in items(engine, batch_id))


def test_bad_relay_settings_are_refused_with_a_sentence(tmp_path: Path) -> None:
    import subprocess
    import sys

    from services.core.errors import InvalidInput
    from services.delivery.mailer import MailConfig

    def smtp(**section: object) -> Settings:
        return Settings(database_url="sqlite://", data_dir=tmp_path, extra={"smtp": section})

    with pytest.raises(InvalidInput, match="\\[smtp\\] hots is not a setting"):
        MailConfig.from_settings(smtp(hots="relay"))
    with pytest.raises(InvalidInput, match="connections must be a whole number"):
        MailConfig.from_settings(smtp(connections="many"))
    with pytest.raises(InvalidInput, match="connections must be greater than or equal to 1"):
        MailConfig.from_settings(smtp(connections=0))
    config = tmp_path / "config.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[smtp]\nstarttls = "perhaps"\n')
    for command in (["db", "upgrade"], ["worker", "--once"]):  # refused at start, whatever runs
        done = subprocess.run(
            [sys.executable, "-m", "console.cli", "--config", str(config), *command],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 2 and "[smtp] starttls must be true or false" in done.stderr
        assert str(config) in done.stderr
    assert "Traceback" not in done.stderr


async def test_a_document_in_doubt_resolved_as_arrived_still_gets_its_password(
    engine: Engine, tmp_path: Path, sink: MailSink
) -> None:
    """The relay received the document but never answered. The operator sees which message is
    in doubt, its Message-ID (as the relay logged it) and when it was handed over, decides "it
    arrived", and the password follows, even through a first 451 on a relay allowing 2 tries."""
    from services.delivery.in_doubt import in_doubt
    from services.delivery.ledger import Step

    sink.delay = 1.5  # longer than the client waits for the answer to DATA
    sink.start()
    batch_id = make_batch(engine)
    config = settings(tmp_path, sink, timeout=0.5, connections=1)
    await Worker(engine, config, config=FAST).run(once=True)
    sink.delay = 0
    operator = operators.resolve(engine, "caaspp")
    helpdesk = operators.resolve(engine, "helpdesk")
    uncertain = ledger.uncertain_items(engine, batch_id)
    assert uncertain
    for item in uncertain:
        doubt = in_doubt(engine, operator, item.id)  # type: ignore[arg-type]
        assert doubt.step is Step.DOCUMENT and doubt.handed_at is not None
        assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", doubt.message_id)
        assert doubt.recipient == item.address and doubt.message_id in doubt.text()
        assert "the document" in doubt.text()
        masked = in_doubt(engine, helpdesk, item.id)  # type: ignore[arg-type]
        assert item.address not in masked.text() and "***@" in masked.recipient
        ledger.resolve_uncertain(engine, Actor.of(operator), item.id, Resolution.SENT)  # type: ignore[arg-type]
    first = sink.data_count
    sink.data_rules.append(lambda rcpt, n: "451 4.3.0 Try again later" if n == first + 1 else None)
    retry = settings(tmp_path, sink, max_attempts=2, backoff_seconds=0.1, backoff_max_seconds=0.2)
    await Worker(engine, retry, config=FAST).run(once=True)
    for item in items(engine, batch_id):
        assert item.state == ItemState.DONE, (item.id, item.state, item.error)
        assert len(sink.by_item()[item.id]["password"]) == 1  # type: ignore[index]


async def test_a_minute_long_relay_outage_is_shown_costs_a_minute_and_retry_now_sends(
    engine: Engine, tmp_path: Path, sink: MailSink
) -> None:
    """The relay refuses connections for a minute (of the worker's clock) while a whole-LEA
    batch waits. No message is pushed back by more than about the outage itself (relay
    backoff; counting failed tries pushed them back the full hour); the progress screen says the
    relay is unreachable, since when and when the next try is; r makes the messages due at once
    and the worker, reading that from the database, delivers them."""
    from textual.widgets import Static

    from console.app import SSRConsoleApp
    from screens.batch_progress import BatchProgressScreen
    from services.core.context import ConsoleContext

    operator = operators.resolve(engine, "caaspp")
    batch_id = batches.create(
        engine, operator, batches.Selection(), name="whole LEA", password_delay=timedelta(0)
    )
    families = len(items(engine, batch_id))
    assert families >= 15
    start = datetime.now(UTC)
    clock = Clock(start)
    config = settings(tmp_path, sink)  # default backoff: 30 s base, 1 h cap
    worker = Worker(engine, config, clock=clock, config=FAST)
    run = asyncio.create_task(worker.run())
    for _ in range(600):  # packages made (slow on a loaded machine), the first send refused
        if any("unreachable" in (i.error or "") for i in items(engine, batch_id)):
            break
        await asyncio.sleep(0.1)
    for _ in range(60):  # one minute of the worker's time, with the relay down
        await asyncio.sleep(0.05)
        clock.now += timedelta(seconds=1)
    waiting = [i for i in items(engine, batch_id) if i.state == ItemState.PACKAGED]
    assert any("unreachable" in (i.error or "") for i in waiting)
    latest = max(i.next_attempt_at for i in waiting)
    assert latest.replace(tzinfo=UTC) - clock.now < timedelta(seconds=75), latest - clock.now

    app = SSRConsoleApp(ConsoleContext(engine, config, operator))
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(BatchProgressScreen(app.ctx, batch_id))

        async def figures(until: Callable[[str], bool]) -> str:
            """The figures once they satisfy ``until`` (the screen refreshes every second)."""
            for _ in range(100):
                await pilot.pause(0.1)
                text = str(app.screen.query_one("#figures", Static).render())
                if until(text):
                    break
            return text

        shown = await figures(lambda t: "Relay unreachable" in t)
        assert f"Relay unreachable since {start:%H:%M} UTC" in shown, shown
        assert "next try" in shown and "r retry now" in shown
        sink.start()
        await pilot.press("r")
        for _ in range(600):
            if all(i.state == ItemState.DONE for i in items(engine, batch_id)):
                break
            await asyncio.sleep(0.1)
        shown = await figures(lambda t: "Relay unreachable" not in t)
        assert "Relay unreachable" not in shown, shown
    worker.stop()
    await asyncio.wait_for(run, 30)
    exactly_once(sink, engine, batch_id)
