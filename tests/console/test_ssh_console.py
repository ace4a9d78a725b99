"""The real console over the built-in SSH server, reached with the OpenSSH client on a pty.

One small demo database and one server (with its prepared launcher) serve every test here, as
they take a few seconds to set up; each test opens its own sessions.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlmodel import Session, col, select

from console.ssh_server import ConsoleServer, SSHOptions, prepared_launcher
from services.audit.tables import AuditEvent
from services.core import db
from services.core.settings import Settings
from services.demo import district as demo
from services.roster.tables import Student
from tests.databases import Templates
from tests.ssh_harness import Terminal, known_hosts, make_key, ssh_argv

SGR = re.compile(rb"\x1b\[([0-9;]*)m")
GREY_CODES = {30, 37, 40, 47, 90, 97, 100, 107}  # black, white and their bright forms


class Console:
    """A served demo database and a key per demo operator."""

    def __init__(self, server: ConsoleServer, engine, keys: dict[str, Path], hosts: Path) -> None:  # type: ignore[no-untyped-def]
        self.server, self.engine, self.keys, self.hosts = server, engine, keys, hosts

    async def open(self, who: str, columns: int = 80, rows: int = 24, **env: str) -> Terminal:
        term = Terminal()
        extra = ["-tt"] + [
            opt for k, v in env.items() if k != "TERM" for opt in ("-o", f"SetEnv={k}={v}")
        ]
        await term.start(
            ssh_argv(self.server.port, self.keys[who], self.hosts, *extra),
            columns,
            rows,
            TERM=env.get("TERM", "xterm-256color"),
        )
        return term

    def console_pids(self) -> set[int]:
        return {s.process.pid for s in self.server.sessions if s.process and s.process.pid}


pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.xdist_group("ssh_console"),  # one worker: the module's console is served once
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def console(
    tmp_path_factory: pytest.TempPathFactory, templates: Templates
) -> AsyncIterator[Console]:
    tmp_path = tmp_path_factory.mktemp("ssh-console")
    url = f"sqlite:///{tmp_path / 'ssr.db'}"
    settings = Settings(database_url=url, data_dir=tmp_path / "data")
    engine = db.make_engine(url)
    templates.seed_demo(engine, settings, students=12, seed=7, pdfs=False)
    keys = {who: make_key(tmp_path, who) for who in ("caaspp", "helpdesk")}
    (tmp_path / "authorized_keys").write_text(
        "".join(key.with_suffix(".pub").read_text() for key in keys.values())
    )
    options = SSHOptions.in_data_dir(
        settings.data_dir, port=0, authorized_keys=tmp_path / "authorized_keys", idle_timeout=0
    )
    launcher = prepared_launcher(["--database-url", url, "--data-dir", str(settings.data_dir)])
    server = ConsoleServer(options, engine, launcher)
    await server.start()
    assert server.host_key is not None
    hosts = known_hosts(tmp_path / "known_hosts", server.host_key, server.port)
    yield Console(server, engine, keys, hosts)
    await server.close()
    engine.dispose()


async def test_dashboard_keys_resize_and_quit(console: Console) -> None:
    term = await console.open("caaspp")
    await term.expect(r"Dashboard")
    await term.expect(r"Students\s+12")  # the roster panel, counted in the console's worker
    title = re.escape(f"coordinator · {demo.LEA_NAME}")  # the header: role, then LEA name
    assert not re.search(title, term.text)  # cut to fit 80 columns
    [pid] = console.console_pids()

    mark = len(term.output)
    term.press("?")
    await term.expect(r"Help", since=mark)
    # ? closes the help too; a lone ESC is only known to be one after Textual's escape timeout,
    # so under load it could merge with the next key
    term.press("?")
    mark = len(term.output)
    term.resize(140, 30)
    await term.expect(title, since=mark)  # now there is room for all of it

    term.press("q")
    assert await term.wait() == 0
    assert pid not in console.console_pids()
    assert await _gone(pid)


async def test_two_keys_two_roles(console: Console) -> None:
    coordinator, helpdesk = await asyncio.gather(console.open("caaspp"), console.open("helpdesk"))
    await coordinator.expect(r"LEA CAASPP coordinator")
    await helpdesk.expect(r"Help desk")
    await asyncio.gather(coordinator.expect(r"Students\s+12"), helpdesk.expect(r"Students\s+12"))

    mark = len(helpdesk.output)
    helpdesk.press("l")
    await helpdesk.expect(r"not allowed", since=mark)
    await helpdesk.expect(r"A help desk may not view the audit", since=mark)

    mark = len(coordinator.output)
    coordinator.press("l")
    await coordinator.expect(r"ssh\.login", since=mark)  # the audit log lists the SSH logins

    # The credential screen: the coordinator may enter the TOMS credential, the help desk may not.
    marks = len(coordinator.output), len(helpdesk.output)
    coordinator.press("c")
    helpdesk.press("c")
    await coordinator.expect(r"e Enter ", since=marks[0])
    await helpdesk.expect(r"only the LEA coordinators change", since=marks[1])
    marks = len(coordinator.output), len(helpdesk.output)
    coordinator.press("e")
    helpdesk.press("e")
    await coordinator.expect(r"Secret key TOMS showed", since=marks[0])
    await asyncio.sleep(1)  # as long as the coordinator's dialog took to show, and more
    assert "Secret key" not in helpdesk.text_since(marks[1])
    assert "e Enter " not in helpdesk.text

    pids = console.console_pids()
    assert len(pids) == 2
    await asyncio.gather(coordinator.hang_up(), helpdesk.hang_up())
    for _ in range(100):
        if not console.console_pids():
            break
        await asyncio.sleep(0.1)
    assert not console.console_pids()
    assert all([await _gone(pid) for pid in pids])
    with Session(console.engine) as session:
        logins = session.exec(select(AuditEvent).where(AuditEvent.action == "ssh.login")).all()
    assert {(e.operator, e.role) for e in logins} == {
        ("caaspp", "lea_caaspp"),
        ("helpdesk", "helpdesk"),
    }


async def test_putty_term_and_no_colour(console: Console) -> None:
    plain, coloured = await asyncio.gather(
        console.open("helpdesk", TERM="xterm", NO_COLOR="1"),  # PuTTY's TERM, NO_COLOR sent
        console.open("helpdesk", TERM="xterm"),
    )
    await asyncio.gather(plain.expect(r"Students\s+12"), coloured.expect(r"Students\s+12"))
    assert _hues(bytes(coloured.output)), "the console should use colour when allowed"
    assert not _hues(bytes(plain.output)), "NO_COLOR: Textual renders in greys only"
    for term in (plain, coloured):
        term.press("q")
        assert await term.wait() == 0


async def test_launcher_death_ends_its_sessions_and_it_is_started_again(
    console: Console,
) -> None:
    """If the prepared launcher is killed its sessions end cleanly and it is started again."""
    term = await console.open("caaspp")
    await term.expect(r"Students\s+12")
    [pid] = console.console_pids()
    launcher = console.server.launcher
    helper = launcher._helper  # type: ignore[attr-defined]
    helper.kill()
    assert await term.wait() != 0
    assert await _gone(pid)
    for _ in range(200):  # started again at once, not at the next login
        if launcher._helper is not helper and launcher._ready.done():  # type: ignore[attr-defined]
            break
        await asyncio.sleep(0.05)
    assert launcher._helper is not helper and launcher._ready.result()  # type: ignore[attr-defined]
    again = await console.open("caaspp")
    await again.expect(r"Students\s+12")
    again.press("q")
    assert await again.wait() == 0


async def test_outsized_locale_variables_refuse_one_session_and_spare_the_others(
    console: Console,
) -> None:
    """A help desk user sends 100 KB of LC_* (stock OpenSSH SendEnv): that session alone is refused
    with a sentence and audited with the operator and address; the other session keeps working
    and the launcher is the same process."""
    bystander = await console.open("caaspp")
    await bystander.expect(r"Students\s+12")
    helper = console.server.launcher._helper  # type: ignore[attr-defined]

    big = {name: "x" * 25_000 for name in ("LC_ALL", "LC_CTYPE", "LC_TIME", "LC_MESSAGES")}
    attacker = Terminal()
    await attacker.start(
        ssh_argv(
            console.server.port,
            console.keys["helpdesk"],
            console.hosts,
            "-tt",
            "-o",
            "SendEnv=LC_*",
        ),
        TERM="xterm-256color",
        **big,
    )
    assert await attacker.wait() != 0

    mark = len(bystander.output)
    bystander.press("?")
    await bystander.expect(r"Help", since=mark)  # a key, and a frame back
    bystander.press("?")
    assert re.search(
        r"refused this session: LC_\w+ is 25000 bytes long \(at most 256\)", attacker.text
    )
    assert console.server.launcher._helper is helper  # type: ignore[attr-defined]
    assert helper.returncode is None

    [event] = await _audited("ssh.request_refused", console)
    assert (event.operator, event.role) == ("helpdesk", "helpdesk")
    assert event.target.startswith("127.0.0.1:")
    assert "LC_" in event.detail and "x" * 300 not in event.detail

    bystander.press("q")
    assert await bystander.wait() == 0


async def _audited(action: str, console: Console) -> list[AuditEvent]:
    """The ``action`` events, once the server's audit trail (written off its loop) has them."""
    for _ in range(100):
        with Session(console.engine) as session:
            found = session.exec(select(AuditEvent).where(AuditEvent.action == action)).all()
        if found:
            return list(found)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {action} in the audit log")


def _hues(output: bytes) -> set[str]:
    """Colours in the SGR codes that are not a shade of grey."""
    found: set[str] = set()
    for match in SGR.finditer(output):
        params = [int(p) for p in match.group(1).split(b";") if p] or [0]
        index = 0
        while index < len(params):
            code = params[index]
            if code in (38, 48) and params[index + 1 : index + 2] == [2]:
                r, g, b = params[index + 2 : index + 5]
                if not r == g == b:
                    found.add(f"rgb({r},{g},{b})")
                index += 5
                continue
            if code in (38, 48) and params[index + 1 : index + 2] == [5]:
                if not (params[index + 2] >= 232 or params[index + 2] in (0, 7, 8, 15, 16, 231)):
                    found.add(f"256:{params[index + 2]}")
                index += 3
                continue
            if (30 <= code <= 47 or 90 <= code <= 107) and code not in GREY_CODES | {39, 49}:
                found.add(str(code))
            index += 1
    return found


async def _gone(pid: int) -> bool:
    """Whether the process has ended within a few seconds (a SIGKILL waits for a CPU to land)."""
    for _ in range(100):
        if not _alive(pid):
            return True
        await asyncio.sleep(0.05)
    return False


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


async def test_openssh_mode_per_key_command_picks_the_operator(console: Console) -> None:
    """What sshd runs for a key with command="env SSR_OPERATOR=helpdesk ssr-console open"."""
    ssr_console = Path(sys.executable).with_name("ssr-console")
    url = str(console.engine.url)
    forced = (
        f"env SSR_OPERATOR=helpdesk TEXTUAL_ANIMATIONS=none {ssr_console} --database-url {url} open"
    )
    term = Terminal()
    await term.start(["/bin/sh", "-c", forced], TERM="xterm-256color")
    await term.expect(r"Help desk")
    await term.expect(r"Students\s+12")
    term.press("q")
    assert await term.wait() == 0


async def test_a_hostile_name_reaches_the_ssh_client_escaped(console: Console) -> None:
    """A student named with an OSC 52 clipboard write, a clear-screen, an OSC 0 title, markup,
    a C1 CSI and a bidi override: the bytes the real ssh client receives carry none of them,
    the name shows escaped, and the session goes on."""
    hostile = "\x1b]52;c;aGFja2Vk\x07[/bold]\x1b[2J[red]x\x1b]0;pwned\x07\x9b2J\u202e"
    with Session(console.engine) as session:
        student = session.exec(select(Student).order_by(col(Student.name_key))).first()
        assert student is not None
        student_id, kept = student.id, student.last_name
        student.last_name = hostile + kept  # name_key unchanged: still the first row
        session.add(student)
        session.commit()
    try:
        term = await console.open("caaspp")
        await term.expect(r"Dashboard")
        mark = len(term.output)
        term.press("s")
        await term.expect(r"\\x1b\]52;c;aGFja2Vk", since=mark)
        mark = len(term.output)
        term.press("?")  # the session still answers
        await term.expect(r"Keys: Students", since=mark)
        term.press("?")
        term.press("q")
        assert await term.wait() == 0
        shown = bytes(term.output)
        for raw in ("\x1b]52;c;aGFja2Vk", "\x1b]0;pwned", "\x1b[2J[red]", "\x9b", "\u202e"):
            assert raw.encode() not in shown
        assert "Error" not in term.text
    finally:
        with Session(console.engine) as session:
            again = session.get(Student, student_id)
            assert again is not None
            again.last_name = kept
            session.add(again)
            session.commit()
