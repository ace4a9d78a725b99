"""Concurrent SSH sessions on the built-in server: time to first frame, key latency, memory.

Starts the server on loopback over a small demo database, opens every session at once with the
real OpenSSH client (each on a pty, 80x24), and measures:
- first frame: from starting ``ssh`` to the dashboard's header and first panel on the screen;
- key latency: with every session open, ``?`` pressed in all of them at once, until help shows;
- memory: RSS and PSS (shared pages split fairly) of each session's process tree.

    .venv/bin/python bench/ssh.py              # 20 sessions (the acceptance figure)
    .venv/bin/python bench/ssh.py --full       # 40 sessions
    .venv/bin/python bench/ssh.py --exec       # exec each console instead of forking it
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the harness lives in tests/

from console.ssh_launcher import ExecLauncher  # noqa: E402
from console.ssh_server import ConsoleServer, SSHOptions, prepared_launcher  # noqa: E402
from services.core import db  # noqa: E402
from services.core.settings import Settings  # noqa: E402
from services.demo import district as demo  # noqa: E402
from tests.ssh_harness import Terminal, known_hosts, make_key, ssh_argv  # noqa: E402

FIRST_FRAME = r"Dashboard[\s\S]*Roster"
HELP = r"Help"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def tree(pid: int) -> list[int]:
    """The pid and every descendant, read from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def memory_kb(pid: int, field: str) -> int:
    path = Path(f"/proc/{pid}/smaps_rollup")
    try:
        for line in path.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def run(sessions: int, students: int, exec_each: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="ssr-bench-ssh-") as name:
        tmp = Path(name)
        url = f"sqlite:///{tmp / 'ssr.db'}"
        settings = Settings(database_url=url, data_dir=tmp / "data")
        engine = db.make_engine(url)
        db.upgrade(engine)
        demo.seed(engine, settings, students=students, seed=1, pdfs=False)
        people = [username for username, *_ in demo.OPERATORS]
        keys = {who: make_key(tmp, who) for who in people}
        (tmp / "authorized_keys").write_text(
            "".join(
                f'operator="{who}" {key.with_suffix(".pub").read_text()}'
                for who, key in keys.items()
            )
        )
        options = SSHOptions.in_data_dir(
            settings.data_dir, port=0, authorized_keys=tmp / "authorized_keys", idle_timeout=0
        )
        args = ["--database-url", url, "--data-dir", str(settings.data_dir)]
        launcher = (
            ExecLauncher(
                lambda who: [sys.executable, "-m", "console.cli", *args, "--operator", who, "open"]
            )
            if exec_each
            else prepared_launcher(args)
        )
        server = ConsoleServer(options, engine, launcher)
        await server.start()
        assert server.host_key is not None
        hosts = known_hosts(tmp / "known_hosts", server.host_key, server.port)
        how = "exec per session" if exec_each else "forked from the prepared launcher"
        print(f"{sessions} sessions ({how}), demo LEA of {students} students")

        terms = [Terminal() for _ in range(sessions)]
        await asyncio.gather(
            *(
                term.start(ssh_argv(server.port, keys[people[i % len(people)]], hosts, "-tt"))
                for i, term in enumerate(terms)
            )
        )
        seen = await asyncio.gather(*(term.expect(FIRST_FRAME, timeout=120) for term in terms))
        first = [(at - term.started_at) * 1000 for at, term in zip(seen, terms, strict=True)]
        print(
            f"first frame: p50 {percentile(first, 0.5):.0f} ms, "
            f"p95 {percentile(first, 0.95):.0f} ms, max {max(first):.0f} ms"
        )

        await asyncio.sleep(1)  # let the dashboards' counting workers finish
        pids = [s.process.pid for s in server.sessions if s.process and s.process.pid]
        trees = [tree(pid) for pid in pids]
        rss = [sum(memory_kb(p, "Rss") for p in t) / 1024 for t in trees]
        pss = [sum(memory_kb(p, "Pss") for p in t) / 1024 for t in trees]
        print(
            f"memory per session: RSS {statistics.mean(rss):.1f} MB, "
            f"PSS {statistics.mean(pss):.1f} MB ({len(pids)} console processes)"
        )

        marks = [len(term.output) for term in terms]
        pressed = time.monotonic()
        for term in terms:
            term.press("?")
        seen = await asyncio.gather(
            *(
                term.expect(HELP, timeout=60, since=mark)
                for term, mark in zip(terms, marks, strict=True)
            )
        )
        keys_ms = [(at - pressed) * 1000 for at in seen]
        print(
            f"key to frame (all at once): p50 {percentile(keys_ms, 0.5):.0f} ms, p95 {percentile(keys_ms, 0.95):.0f} ms"
        )

        await asyncio.gather(*(term.hang_up() for term in terms))
        for _ in range(100):
            if not server.sessions:
                break
            await asyncio.sleep(0.1)
        left = len(server.sessions)
        await server.close()
        engine.dispose()
        print(
            f"result: sessions={sessions} launcher={'exec' if exec_each else 'prepared'} "
            f"first_frame_p50_ms={percentile(first, 0.5):.0f} "
            f"first_frame_p95_ms={percentile(first, 0.95):.0f} "
            f"key_p50_ms={percentile(keys_ms, 0.5):.0f} key_p95_ms={percentile(keys_ms, 0.95):.0f} "
            f"rss_per_session_mb={statistics.mean(rss):.1f} "
            f"pss_per_session_mb={statistics.mean(pss):.1f} sessions_left_after_hangup={left}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="40 sessions")
    parser.add_argument("--sessions", type=int, help="how many concurrent sessions")
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--exec", action="store_true", help="exec each console (for comparison)")
    args = parser.parse_args()
    sessions = args.sessions or (40 if args.full else 20)
    asyncio.run(run(sessions, args.students, args.exec))


if __name__ == "__main__":
    main()
