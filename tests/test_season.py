"""A whole season as one test, through the command line only (issue 20).

Each capability has tests of its own; this one walks the chain a district walks, as separate
``ssr-console`` processes on one configuration file and an empty data directory, so a link
between two capabilities that no single test crosses (an imported SSR the worker cannot find, a
second batch that re-sends every family) breaks here: setup with two coordinators, operators
with SSH keys, the roster from a OneRoster zip and a SIS contacts CSV, the TOMS credential
verified against a TOMS-style API on loopback, SSRs from a zip and from the API, the plan, a
notice batch, a secure email batch sent by ``ssr-console worker`` (started in another directory)
to an SMTP server on loopback, every attachment opened with the password from the other message
only, a print batch and an ETS paper order, a corrected SSR and its ``corrections`` batch, a
second ``lea`` batch that sends nothing new, reports that agree with what the relay received,
the scheduler's deadline notices and the audit chain. Then every screen, as every role, on the
database the season left.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.delivery_harness import MailSink, Received, check_family
from tests.pilot import wait_for
from tests.season_world import (
    LEA_CDS,
    LEA_NAME,
    SCHOOLS,
    TOMS_SECRET,
    TOMS_USER,
    Console,
    District,
    TomsApi,
    ssr,
    ssr_zip,
)
from tests.ssh_harness import make_key

pytestmark = pytest.mark.slow(minutes=5)

COORDINATORS = {"maria": "maria.lopez@svusd.example", "tran": "tran.nguyen@svusd.example"}
OPERATORS = {"maria": "lea_caaspp", "tran": "lea_elpac", "sam": "site", "tina": "tech", "hugo": "helpdesk"}  # fmt: skip
RECEIVED = date.today() - timedelta(days=45)  # TOMS made the SSRs available then: now past due


class Season:
    """The district, its console, relay and TOMS, and what the season has done so far."""

    def __init__(self, tmp: Path, database_url: str | None, sink: MailSink, toms: TomsApi) -> None:
        self.tmp = tmp
        self.district = District()
        self.sink = sink
        self.toms = toms
        self.data = tmp / "data"
        config = tmp / "etc" / "ssr-console.toml"
        config.parent.mkdir(mode=0o700)
        url = f'database_url = "{database_url}"\n' if database_url else ""
        config.write_text(
            f'{url}data_dir = "{self.data}"\n'
            "[smtp]\n"
            f'host = "127.0.0.1"\nport = {sink.port}\nfrom_address = "ssr-reports@svusd.example"\n'
            'from_name = "Sierra Vista USD"\nconnections = 2\nbackoff_seconds = 0.05\n'
            "[delivery]\n"
            "password_delay_minutes = 0\nprocesses = 1\npoll_seconds = 0.1\n"
            "heartbeat_seconds = 1.0\n"
            "[toms]\n"
            f'url = "{toms.url}"\n'
            "[print]\n"
            'return_address = ["100 Main Street", "Sierra Vista, CA 93001"]\n'
        )
        config.chmod(0o600)
        self.config = config
        here = tmp / "scripts"  # where the coordinator's shell script runs
        here.mkdir()
        self.cli = Console(config, here)
        self.worker: subprocess.Popen[bytes] | None = None

    @property
    def inbox(self) -> Path:
        inbox = self.data / "inbox"  # the default intake folder
        inbox.mkdir(mode=0o700, exist_ok=True)
        return inbox

    def deliveries(self) -> list[Received]:
        """Messages of delivery batches (``<item>; <step>``), not the scheduler's (``notice:<id>``)."""
        return [r for r in self.sink.received if ";" in str(r.message["X-SSR-Delivery"] or "")]

    def start_worker(self) -> None:
        elsewhere = self.tmp / "elsewhere"  # not the data dir, not the scripts' folder
        elsewhere.mkdir()
        self.worker = self.cli.start("worker", cwd=elsewhere, log=self.tmp / "worker.log")

    def check_worker(self) -> None:
        """Fail at once, with its log, when the worker has stopped by itself."""
        assert self.worker is not None and self.worker.poll() is None, (
            self.tmp / "worker.log"
        ).read_text(errors="replace")

    def stop_worker(self) -> str:
        if self.worker is not None:
            self.worker.terminate()
            self.worker.wait(timeout=30)
        return (self.tmp / "worker.log").read_text(errors="replace")


@pytest.fixture(params=["sqlite", "postgresql"])
def season(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Season]:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    district = District()
    served = {c.ssid: ssr(c) for c in district.children if c.source == "api"}
    sink = MailSink().start()
    with TomsApi(served, f"{RECEIVED.isoformat()}T09:00:00-07:00") as toms:
        made = Season(tmp_path, url, sink, toms)
        try:
            yield made
        finally:
            log = made.stop_worker() if made.worker else ""
            sink.stop()
            if log and "Traceback" in log:
                print(log)


# --- the steps, in the order a district takes them -------------------------------------------


def set_up_lea(s: Season) -> None:
    """An empty data directory: the LEA and its two coordinators, then the people and keys."""
    assert not s.data.exists()
    out = s.cli.ok(
        "setup", "--cds", LEA_CDS, "--name", LEA_NAME, "--county", "Ventura",
        "--caaspp", "maria", "--caaspp-name", "María López", "--caaspp-email", COORDINATORS["maria"],
        "--elpac", "tran", "--elpac-name", "Tran Nguyen", "--elpac-email", COORDINATORS["tran"],
    )  # fmt: skip
    assert LEA_CDS in out
    keys = s.tmp / "keys"
    keys.mkdir()
    for who in OPERATORS:
        make_key(keys, who)
    s.cli.ok("operator", "add-key", "maria", str(keys / "maria.pub"), operator="maria")
    s.cli.ok("operator", "add-key", "tran", str(keys / "tran.pub"), operator="tran")
    s.cli.ok(
        "operator", "add", "tina", "--name", "Tina Tech", "--role", "tech",
        "--key", str(keys / "tina.pub"), operator="maria",
    )  # fmt: skip
    s.cli.ok(
        "operator", "add", "hugo", "--name", "Hugo Help", "--role", "helpdesk",
        "--key", str(keys / "hugo.pub"), operator="tina",
    )  # fmt: skip


def import_roster(s: Season) -> None:
    """The SIS export, dry run then import; then the site coordinator of a school it named."""
    paths = [str(p) for p in s.district.write_sis(s.inbox)]
    dry = s.cli.ok("roster", "import", *paths, "--dry-run", operator="maria")
    assert "12" in dry, dry
    out = s.cli.ok("roster", "import", *paths, operator="maria")
    assert re.search(r"\b12\b", out) and re.search(r"\b15\b", out), out
    keys = s.tmp / "keys"
    s.cli.ok(
        "operator", "add", "sam", "--name", "Sam Site", "--role", "site",
        "--school", SCHOOLS["sch-a"][0], "--key", str(keys / "sam.pub"), operator="maria",
    )  # fmt: skip
    listed = s.cli.ok("operator", "list", "--json", operator="maria")
    assert all(f'"{who}"' in listed for who in OPERATORS), listed


def record_credential(s: Season) -> None:
    """The credential TOMS showed, verified with TOMS's token endpoint before it is recorded."""
    secret = s.tmp / "etc" / "toms-secret"
    secret.write_text(TOMS_SECRET + "\n")
    secret.chmod(0o600)
    before = s.toms.token_requests
    out = s.cli.ok(
        "credential", "record", "--username", TOMS_USER, "--secret-file", str(secret),
        operator="maria",
    )  # fmt: skip
    assert s.toms.token_requests > before, "recorded without asking TOMS"
    assert TOMS_SECRET not in out and "unverified" not in out.lower(), out
    status = s.cli.ok("credential", "status", operator="tran")
    assert "active" in status and "not verified" not in status, status


def import_reports(s: Season) -> None:
    """A TOMS bulk download (zip) and the rest from the API, with the recorded credential."""
    from_zip = [c for c in s.district.children if c.source == "zip"]
    archive = ssr_zip(s.inbox / "toms-download.zip", from_zip)
    out = s.cli.ok("import", str(archive), "--received", RECEIVED.isoformat(), operator="maria")
    assert f"{len(from_zip)} stored" in out, out
    out = s.cli.ok("import", "--api", operator="maria")
    from_api = [c for c in s.district.children if c.source == "api"]
    assert f"{len(from_api)} stored" in out, out


def save_plan(s: Season) -> None:
    """The advisor's four questions (the portal share pre-filled from the roster), saved: secure
    email for the families with an address, print locally for the rest."""
    out = s.cli.ok(
        "plan", "recommend", "--has-sis", "yes", "--sis-portal", "no",
        "--third-party-portal", "no", "--save", operator="maria",
    )  # fmt: skip
    assert "B" in out and "C" in out, out
    shown = json.loads(s.cli.ok("plan", "show", "--json", operator="tran"))
    assert shown["plan"] and set(shown["plan"]["channels"]) == {"B", "C"}, shown


def create_batch(s: Season, channel: str, *scope: str) -> str:
    """``batch create``; returns the id it prints (``B2``, ``C1``...)."""
    out = s.cli.ok("batch", "create", "--channel", channel, "--scope", *scope, operator="maria")
    batch_id = out.strip()
    assert re.fullmatch(r"[ABCDN]\d+", batch_id), out
    return batch_id


def batch_shown(s: Season, batch_id: str) -> dict[str, Any]:
    return json.loads(s.cli.ok("batch", "show", batch_id, "--json", operator="maria"))


def batch_reached(
    s: Season, batch_id: str, ready: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    """Wait until ``batch show`` says what ``ready`` wants, and return what it says. The waiting
    reads the batch's status and item states in this process: a ``batch show`` process per look
    would take most of the CPU the worker it waits for needs."""
    from console import config
    from services.access import operators
    from services.channels import batches as channel_batches
    from services.core import db
    from services.delivery import batches

    number = int(batch_id[1:])
    engine = db.make_engine(config.load(s.config).database_url)
    maria = operators.resolve(engine, "maria")

    def looked() -> dict[str, Any]:
        if batch_id[0] in "BN":
            return {"status": batches.get_batch(engine, maria, number).status.value}
        states = channel_batches.progress(engine, maria, number)
        return {"states": {state.value: n for state, n in states.items()}}

    try:
        wait_for(lambda: ready(looked()), timeout=timeout, what=f"batch {batch_id}", interval=0.2)
    finally:
        engine.dispose()
    shown = batch_shown(s, batch_id)
    assert ready(shown), shown
    return shown


def arrived(s: Season, step: str, count: int, since: int = 0) -> list[Received]:
    """Wait until the relay accepted ``count`` messages of ``step`` (after message ``since``);
    they are those."""

    def of_step() -> list[Received]:
        s.check_worker()
        return [r for r in s.deliveries()[since:] if r.step == step]

    wait_for(lambda: len(of_step()) >= count, timeout=120, what=f"{count} {step} messages")
    return of_step()


def tell_families(s: Season) -> None:
    """The notice batch: one message per guardian who may be written to, before any report."""
    batch_id = create_batch(s, "notice", "lea")
    assert batch_id.startswith("N")
    told = {g.email for g in s.district.told}
    notices = arrived(s, "notice", len(told))
    assert sorted(r.recipient for r in notices) == sorted(told)
    for notice in notices:
        assert "ssr-reports@svusd.example" in notice.body, notice.body
        assert not notice.attachments()
        in_language(s, notice)


def in_language(s: Season, received: Received) -> None:
    """The message is in the addressee's correspondence language, as the SIS export gave it."""
    language = s.district.by_email(received.recipient).language.replace("_", "-")
    assert received.message["Content-Language"] == language, (received.recipient, language)


def send_secure_email(s: Season) -> tuple[list[Received], list[Received]]:
    """The plan's secure-email batch, sent by the worker; every family's two messages."""
    since = len(s.deliveries())
    batch_id = create_batch(s, "email", "plan")
    families = len(s.district.emailed)
    documents = arrived(s, "document", families, since)
    passwords = arrived(s, "password", families, since)
    batch_reached(s, batch_id, lambda shown: shown["status"] == "finished", timeout=60)
    return documents, passwords


def check_secure_email(s: Season, documents: list[Received], passwords: list[Received]) -> set[str]:
    """Every family owed a message got one document and one password message, and every
    attachment opens with that other message's password and holds exactly their children.
    Returns the SSIDs the families could read."""
    by_item: dict[int, dict[str, Received]] = {}
    for received in documents + passwords:
        assert received.step not in by_item.get(received.item_id, {}), "a message went twice"
        by_item.setdefault(received.item_id, {})[received.step] = received
    expected = s.district.emailed
    got = {parts["document"].recipient for parts in by_item.values()}
    assert got == set(expected), (sorted(got - set(expected)), sorted(set(expected) - got))
    # Jose Santos's parents live at two addresses and both may receive his records: two
    # households, two deliveries, each in its own language (Maria's in Filipino); the García
    # parents share one address: one household, one delivery (to the primary contact).
    jose = s.district.child("stu-10")
    assert {"ben.santos@families.example", "maria.santos@families.example"} <= got
    assert (
        [jose]
        == expected["ben.santos@families.example"]
        == expected["maria.santos@families.example"]
    )
    assert "jorge@families.example" not in got and "carmen@families.example" in got
    opened = s.tmp / "opened"
    opened.mkdir(exist_ok=True)
    read: set[str] = set()
    for parts in by_item.values():
        document, password = parts["document"], parts["password"]
        assert document.recipient == password.recipient
        check_family(opened, document, password)
        in_language(s, document)
        in_language(s, password)
        secret = password.password()
        shown = ""
        for index, (name, data) in enumerate(document.attachments()):
            path = opened / f"{document.index}-{index}-{name}"
            path.write_bytes(data)
            shown += subprocess.run(
                ["pdftotext", "-enc", "UTF-8", "-upw", secret, str(path), "-"],
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
        children = expected[document.recipient]
        assert set(re.findall(r"\b\d{10}\b", shown)) == {c.ssid for c in children}
        for child in children:
            assert child.name in shown, (document.recipient, child.name)
            read.add(child.ssid)
    return read


def print_and_order(s: Season) -> None:
    """The plan's print families printed by the worker behind cover sheets with their address;
    the student whose report TOMS never had ordered on paper from ETS, by SSID."""
    printed = [c for c in s.district.on_paper if c.source]
    batch_id = create_batch(s, "print", "plan")
    detail = batch_reached(
        s, batch_id, lambda shown: shown["states"].get("printed", 0) == len(printed), timeout=90
    )["detail"]
    text = "".join(
        subprocess.run(
            ["pdftotext", "-enc", "UTF-8", str(Path(detail["folder"]) / name), "-"],
            capture_output=True, text=True, check=True,
        ).stdout
        for name in detail["files"]
    )  # fmt: skip
    assert set(re.findall(r"\b\d{10}\b", text)) == {c.ssid for c in printed}, text
    for child in printed:
        for family in s.district.households_of(child):
            assert child.name in text and family.address in text, (child.name, family.address)
    order = create_batch(s, "paper", "lea")
    shown = batch_shown(s, order)
    never = [c for c in s.district.children if not c.source]
    assert shown["students"] == len(never), shown
    listed = (s.data / "orders" / f"ets-order-{order[1:]}.csv").read_text(encoding="utf-8")
    assert {c.ssid for c in s.district.children if c.ssid in listed} == {c.ssid for c in never}


def send_corrections(s: Season) -> tuple[Received, Received]:
    """ETS corrected one report: it comes in as a new version, and a ``corrections`` batch sends
    it to the family that had the earlier one, and to nobody else."""
    corrected = s.district.children[0]
    archive = ssr_zip(s.inbox / "toms-corrected.zip", [corrected], score=2555)
    out = s.cli.ok(
        "import", str(archive), "--reason", "ETS corrected the scale score", operator="maria"
    )
    assert "1 new versions" in out, out
    owed = json.loads(s.cli.ok("report", "coverage", "--json", operator="maria"))
    assert owed["corrected"] == 1, owed
    since = len(s.deliveries())
    create_batch(s, "email", "corrections")
    [document] = arrived(s, "document", 1, since)
    [password] = arrived(s, "password", 1, since)
    [family] = s.district.households_of(corrected)
    assert document.recipient == family.email
    opened = s.tmp / "corrected"
    opened.mkdir()
    check_family(opened, document, password)
    return document, password


def nothing_new(s: Season) -> None:
    """A second batch of the whole LEA finds every report already with its family: refused with
    a sentence, and nothing more reaches the relay."""
    before = len(s.deliveries())
    done = s.cli.run("batch", "create", "--channel", "email", "--scope", "lea", operator="maria")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "re-send" in done.stderr and "Traceback" not in done.stderr, done.stderr
    listed = json.loads(s.cli.ok("batch", "list", "--json", operator="maria"))
    assert all(b["status"] in ("finished", "running") for b in listed), listed
    assert len(s.deliveries()) == before


def reports_agree(s: Season, read: set[str]) -> None:
    """Coverage and delivery status count what the relay received: the students whose
    families opened their reports are delivered, the printed ones are in hand (to mail), none
    is sending, failed, uncovered or owed a correction."""
    imported = [c for c in s.district.children if c.source]
    printed = [c for c in s.district.on_paper if c.source]
    coverage = json.loads(s.cli.ok("report", "coverage", "--json", operator="maria"))
    assert coverage["students"] == len(imported) == coverage["once"], coverage
    assert coverage["uncovered"] == coverage["several"] == coverage["corrected"] == 0, coverage
    assert coverage["by_channel"]["B"] == len(read), coverage
    assert coverage["by_channel"]["C"] == len(printed), coverage
    entitled = {g for c in imported for g in s.district.guardians_of(c) if g.receives_records}
    entitled = {g for g in entitled if not g.do_not_contact}
    households = {g for c in imported for g in s.district.households_of(c)}
    assert (coverage["families"], coverage["guardians"]) == (len(households), len(entitled))
    status = json.loads(s.cli.ok("report", "status", "--by", "channel", "--json", operator="tran"))
    total = status["total"]
    assert total["units"] == len(imported), status
    assert total["delivered"] == len(read), status
    assert total["in_hand"] == len(printed), status
    assert total["on_channel"] == total["failed"] == total["uncovered"] == 0, status
    assert status["corrected"] == 0, status


def scheduler_notices(s: Season, undelivered: int) -> None:
    """One scan: the CAASPP coordinator is told how many SSRs are past due, counted like the
    reports count them."""
    before = len(s.sink.received)
    out = s.cli.ok("scheduler", "--once")
    assert "PAST DUE" in out or "past" in out.lower(), out
    notices = s.sink.received[before:]
    past_due = [
        str(n.message["Subject"])
        for n in notices
        if n.recipient == COORDINATORS["maria"] and "PAST DUE" in str(n.message["Subject"])
    ]
    assert len(past_due) == 1, [(n.recipient, n.message["Subject"]) for n in notices]
    assert past_due[0].startswith(f"PAST DUE: {undelivered} CAASPP score reports"), past_due
    inbox = json.loads(s.cli.ok("notices", "--due", "--json", operator="maria"))["inbox"]
    deadlines = [n for n in inbox if n["kind"] == "ssr_deadline"]
    assert [n["pending"] for n in deadlines] == [undelivered], inbox


def verify_audit(s: Season) -> None:
    out = s.cli.ok("audit", "verify")
    assert "audit log intact" in out, out


# --- the Pilot pass ---------------------------------------------------------------------------


async def every_screen_as_every_role(s: Season, secrets: list[str]) -> None:
    """Every destination, as each operator the season made: the screens an operator may open
    render (nothing raised, the session goes on), the others stay closed, and a screen never
    shows what the role must not see: a secret or PDF password to anyone but the coordinators'
    credential screen, a student's name to the technology coordinator, another school's student
    to the site coordinator."""
    from console import config
    from console.navigation import DESTINATIONS, LazyScreen
    from services.access import operators
    from services.access.permissions import allowed
    from services.core import db
    from tests.pilot import app_for, settle

    settings = config.load(s.config)
    engine = db.make_engine(settings.database_url)
    other_school = [c.first for c in s.district.children if c.school != "sch-a"]
    own_school = [c.first for c in s.district.children if c.school == "sch-a"]
    try:
        for username in OPERATORS:
            operator = operators.resolve(engine, username)
            app = app_for(engine, settings, username)
            seen: dict[str, str] = {}
            async with app.run_test(size=(80, 24)) as pilot:
                await settle(pilot)
                for destination in DESTINATIONS:
                    before = app.screen
                    await pilot.press(destination.key)
                    await settle(pilot)
                    factory = destination.factory
                    expected = factory.name if isinstance(factory, LazyScreen) else factory.__name__
                    opened = destination.permission is None or allowed(
                        operator, destination.permission
                    )
                    if opened:
                        assert type(app.screen).__name__ == expected, (username, destination.title)
                    else:
                        assert app.screen is before, (username, destination.title)
                    seen[destination.title] = shown(app)
                    await pilot.press("escape")
                    await settle(pilot)
                assert app.is_running, username
            everything = "\n".join(seen.values())
            if username in ("maria", "tran"):
                assert TOMS_USER in seen["Credential"], "the check below would see nothing"
            else:
                assert TOMS_USER not in everything, username
            for secret in secrets:
                assert secret not in everything, (username, "a secret is on screen")
            if username == "tina":
                assert not any(c.last in everything for c in s.district.children), everything
            if username == "sam":
                assert any(last in seen["Students"] for last in own_school)
                assert not any(last in seen["Students"] for last in other_school)
            if username == "maria":
                assert any(c.last in seen["Students"] for c in s.district.children)
    finally:
        engine.dispose()


def shown(app) -> str:  # type: ignore[no-untyped-def]
    """The text the compositor draws now (screen, dialogs, notifications)."""
    svg = html.unescape(app.export_screenshot()).replace("\xa0", " ")
    return re.sub(r"<[^>]+>", "", svg)


# --- the season -------------------------------------------------------------------------------


async def test_a_whole_season_from_an_empty_data_directory(season: Season) -> None:
    s = season
    set_up_lea(s)
    import_roster(s)
    record_credential(s)
    import_reports(s)
    s.start_worker()
    save_plan(s)
    tell_families(s)
    documents, passwords = send_secure_email(s)
    read = check_secure_email(s, documents, passwords)
    print_and_order(s)
    corrected = send_corrections(s)
    nothing_new(s)
    reports_agree(s, read)
    imported = [c for c in s.district.children if c.source]
    scheduler_notices(s, len([c for c in imported if c.ssid not in read]))
    verify_audit(s)
    s.check_worker()
    log = s.stop_worker()
    assert "Traceback" not in log, log
    delivered = [*documents, *passwords, *corrected]
    assert len(s.deliveries()) == len(s.district.told) + len(delivered), [
        (r.recipient, r.step) for r in s.deliveries()
    ]
    await every_screen_as_every_role(
        s, [TOMS_SECRET, *(p.password() for p in [*passwords, corrected[1]])]
    )
