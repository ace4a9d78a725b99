"""The ``ssr-console`` command: open the console, seed the demo LEA, migrate, serve SSH, run the worker."""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import sys
from datetime import UTC, date, datetime
from importlib.metadata import version
from pathlib import Path

from sqlalchemy.engine import Engine

from console import commands as command_groups
from console import config
from console.commands import credential as credential_command
from console.output import say as _say
from services.core import db, private_files
from services.core.errors import ConsoleError, InvalidInput
from services.core.settings import DatabaseSection, Settings

DEMO_OPERATOR = "caaspp"


@functools.cache
def build_parser() -> argparse.ArgumentParser:
    """The parser of every command, built once per process (parsing does not change it): the SSH
    launcher builds it before it forks, so a session does not pay the command modules' imports."""
    parser = argparse.ArgumentParser(prog="ssr-console", description=__doc__)
    parser.add_argument(
        "--version", action="version", version=f"ssr-console {version('ssr-console')}"
    )
    parser.add_argument("--config", type=Path, help="config file (default: $SSR_CONSOLE_CONFIG)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in the data dir)")
    parser.add_argument("--data-dir", help="where the database and reports live")
    parser.add_argument("--operator", help="sign in as this operator (default: $SSR_OPERATOR)")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("open", help="open the console (the default)")
    demo = commands.add_parser("demo", help="seed the demo LEA if absent, then open the console")
    demo.add_argument("--students", type=int, default=600)
    seed = commands.add_parser("seed", help="seed a synthetic demo LEA")
    seed.add_argument("--students", type=int, default=600)
    seed.add_argument("--seed", type=int, default=2026)
    seed.add_argument("--no-pdfs", action="store_true", help="rows only, no SSR PDF files")
    database = commands.add_parser("db", help="database schema").add_subparsers(dest="db_command")
    database.add_parser("upgrade", help="apply migrations up to head")
    down = database.add_parser("downgrade", help="revert migrations to a revision")
    down.add_argument("revision")
    database.add_parser("current", help="print the schema revision")
    ssh = commands.add_parser("serve-ssh", help="serve the console over SSH (public keys only)")
    ssh.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    ssh.add_argument("--port", type=int, help="port to listen on (default 2222)")
    ssh.add_argument("--host-key", type=Path, help="host key file, created on first start")
    ssh.add_argument("--authorized-keys", type=Path, help="keys and the operators they sign in as")
    ssh.add_argument("--idle-minutes", type=float, help="close sessions idle this long (0: never)")
    intake = commands.add_parser("import", help="import SSR PDFs: zips, folders, merged PDFs")
    intake.add_argument("paths", nargs="*", metavar="PATH", help="zip files, folders or PDFs")
    intake.add_argument(
        "--api",
        metavar="URL",
        nargs="?",
        const="",
        help="instead of files: fetch every in-scope student's SSRs from a TOMS-style API "
        "(default URL: [toms] url) with the recorded credential",
    )
    intake.add_argument(
        "--username", help="with --api: another API username than the recorded credential's"
    )
    credential_command.add_secret_argument(intake, "with --username: the API secret")
    intake.add_argument("--lea", help="only match students of this LEA (7-digit CDS code)")
    intake.add_argument(
        "--pattern", help="file-name regex: groups ssid, program, test, year, language"
    )
    intake.add_argument(
        "--reason", help="why reports whose content changed are kept as new versions"
    )
    intake.add_argument(
        "--received",
        type=_iso_day,
        metavar="DATE",
        help="the day these SSRs became available to the LEA in TOMS (YYYY-MM-DD), from which "
        "the 5 CCR 863 / 11518.15 deadlines count; default: today",
    )
    intake.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count(),
        help="processes checking PDFs (default: cores)",
    )
    worker = commands.add_parser(
        "worker", help="run delivery batches: package and send; read the bounce mailbox"
    )
    worker.add_argument(
        "--once", action="store_true", help="exit when nothing is due within a minute"
    )
    sched = commands.add_parser("scheduler", help="run the reminder scheduler (one per deployment)")
    sched.add_argument("--once", action="store_true", help="run one notice scan, then exit")
    sched.add_argument(
        "--now", type=_moment, help="with --once: scan as of this ISO time (catch-up, tests)"
    )
    sched.add_argument("--scan-minutes", type=float, help="minutes between scans (default 5)")
    command_groups.register_all(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. A reader that closes the pipe early (``ssr-console batch list | head``)
    ends the command quietly with status 1, as Unix tools do, instead of a traceback."""
    try:
        try:
            return _run(argv)
        finally:
            sys.stdout.flush()
    except BrokenPipeError:
        # Python's advice ("Note on SIGPIPE", docs.python.org/3/library/signal.html): point stdout
        # at devnull, so the interpreter's last flush on the way out does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _run(argv: list[str] | None) -> int:
    # Every process of the console (console, worker, scheduler, serve-ssh and the sessions it
    # starts, import) comes through here: whatever it creates is its owner's alone.
    os.umask(private_files.UMASK)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_for(args)
        if tightened := private_files.secure_data_dir(settings.data_dir):
            _say(f"ssr-console: {tightened}", file=sys.stderr)
        return _dispatch(parser, args, settings)
    except ConsoleError as error:
        _say(f"ssr-console: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


LONG_WORK = frozenset({"worker", "import", "roster", "seed", "db"})
"""Commands that run unattended for as long as the work takes: no person waits on them, so they
take ``[database] long_work_statement_timeout_seconds`` instead of the interactive limit."""


def settings_for(args: argparse.Namespace) -> Settings:
    """The settings a command line names: its config file, the environment, its options."""
    return config.load(
        args.config,
        database_url=args.database_url,
        data_dir=args.data_dir,
        operator=args.operator,
    )


_kept_engines: dict[tuple[str, str], Engine] = {}  # (URL, timeouts) -> engine; see keep_engine


def _timeouts(command: str, settings: Settings) -> DatabaseSection:
    timeouts = settings.database
    return timeouts.for_long_work() if command in LONG_WORK else timeouts


def command_engine(command: str, settings: Settings) -> Engine:
    """The engine for one command, with the timeouts its kind of work takes: the one this
    process kept for the same database and timeouts (``keep_engine``), or a new one."""
    timeouts = _timeouts(command, settings)
    kept = _kept_engines.get((settings.database_url, timeouts.model_dump_json()))
    return kept if kept is not None else db.make_engine(settings.database_url, timeouts)


def keep_engine(command: str, settings: Settings) -> Engine:
    """A new engine for ``command``, which this process's later ``command_engine`` calls with the
    same database and timeouts return. The SSH launcher's helper keeps the ``open`` engine and
    runs the dashboard's reads on it before it forks: a session's SQL is then already in the
    engine's compiled cache, which each forked session inherits (issue 22)."""
    timeouts = _timeouts(command, settings)
    engine = db.make_engine(settings.database_url, timeouts)
    _kept_engines[settings.database_url, timeouts.model_dump_json()] = engine
    return engine


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Settings) -> int:
    command = args.command or "open"
    engine = command_engine(command, settings)
    if run := getattr(args, "run", None):
        return int(run(args, engine, settings))
    if command == "db":
        return _db(parser, args, engine)
    if command == "serve-ssh":
        return _serve_ssh(args, engine, settings)
    if command == "import":
        return _import(args, engine, settings)
    if command == "worker":
        return _worker(args, engine, settings)
    if command == "scheduler":
        return _scheduler(args, engine, settings)
    if command == "seed":
        from services.demo import district as demo

        db.upgrade(engine)
        summary = demo.seed(
            engine,
            settings,
            students=args.students,
            seed=args.seed,
            pdfs=not args.no_pdfs,
            progress=_progress,
        )
        _say(f"\n{summary}")
        return 0
    if command == "demo":
        from services.demo import district as demo

        db.upgrade(engine)
        if not demo.exists(engine):
            _say(demo.seed(engine, settings, students=args.students, progress=_progress))
        settings = _with_operator(settings, settings.operator or DEMO_OPERATOR)
    elif not db.current_revisions(engine):  # a new data directory: nothing set up yet
        _say(
            "ssr-console: this database is empty: run `ssr-console setup` for a real LEA, or "
            "`ssr-console demo` to try the console (to create the schema alone, run "
            "`ssr-console db upgrade`)",
            file=sys.stderr,
        )
        return 2
    elif db.needs_upgrade(engine):
        _say(
            "ssr-console: the database schema is not current; run `ssr-console db upgrade`",
            file=sys.stderr,
        )
        return 2
    return _open(engine, settings)


def _db(parser: argparse.ArgumentParser, args: argparse.Namespace, engine) -> int:  # type: ignore[no-untyped-def]
    if args.db_command == "upgrade":
        db.upgrade(engine)
        _say(f"database at revision {_revisions(engine)}")
    elif args.db_command == "downgrade":
        db.downgrade(engine, args.revision)
        _say(f"database at revision {_revisions(engine)}")
    elif args.db_command == "current":
        _say(_revisions(engine))
    else:
        parser.error("db needs a subcommand: upgrade, downgrade or current")
    return 0


def _import(args: argparse.Namespace, engine, settings: Settings) -> int:  # type: ignore[no-untyped-def]
    from services.access import operators
    from services.intake import importer as intake

    if db.needs_upgrade(engine):
        _say(
            "ssr-console: the database schema is not current; run `ssr-console db upgrade`",
            file=sys.stderr,
        )
        return 2
    operator = operators.resolve(engine, settings.operator) if settings.operator else None
    scope = intake.scope_for(engine, operator, args.lea)  # refused now, before anything starts
    options = intake.IntakeOptions.from_settings(
        settings,
        name_pattern=args.pattern,
        version_reason=args.reason,
        workers=args.workers,
        received_on=args.received,
    )
    if bool(args.paths) == (args.api is not None):
        _say("ssr-console import: give either PATHs or --api URL", file=sys.stderr)
        return 2
    try:
        if args.api is not None:
            summary = asyncio.run(
                _import_from_api(args, engine, settings, operator, scope.lea_id, options)
            )
        else:
            paths = [Path(p).absolute() for p in args.paths]  # relative to here, not to the inbox
            summary = intake.import_paths(
                engine, settings, paths, operator, options, _import_progress, lea_cds=args.lea
            )
    except intake.ImportStopped:
        _say("", file=sys.stderr)  # end the progress line; the message says what was kept
        raise
    _say(f"\n{summary}")
    return 0


async def _import_from_api(args: argparse.Namespace, engine, settings, operator, lea_id, options):  # type: ignore[no-untyped-def]
    """By default the credential recorded for the LEA (sealed in the vault) and ``[toms] url``.
    With ``--username``, another one: its secret from an owner-only file, standard input, the
    environment or a no-echo prompt, never the command line (``ps`` shows it to every account)."""
    from services.core import toms, vault  # vault imports cryptography: only this command needs it
    from services.credential import lifecycle as credentials
    from services.intake import importer as intake
    from services.intake.toms_api import TomsClient

    url = args.api or toms.api_url(settings)
    if not url:
        raise InvalidInput("--api needs the API's URL, or [toms] url in the configuration")
    if args.username:
        username = args.username
        secret = credential_command.read_secret(
            args.secret_file, f"API secret for {args.username}: "
        )
    elif args.secret_file:
        raise InvalidInput("--secret-file goes with --username (else the recorded one is used)")
    else:
        lea_id = lea_id or credentials.lea_with_credential(engine, args.lea)
        username, secret = credentials.api_credential(engine, lea_id, vault.load(settings))
    hosts = toms.download_hosts(settings)
    async with TomsClient(
        url, username, secret, download_hosts=hosts, deadline=toms.request_deadline(settings)
    ) as client:
        return await intake.import_from_api(
            engine,
            settings,
            client,
            operator,
            options=options,
            progress=_import_progress,
            lea_cds=args.lea,
            resumable=not args.username,  # a worker resumes with the recorded credential only
        )


def _import_progress(progress) -> None:  # type: ignore[no-untyped-def]
    for refused in progress.refused:
        _say(
            f"refused {refused.source}: {refused.reason.label} ({refused.detail})",
            file=sys.stderr,
            overwrite=True,
        )
    _say(
        f"importing: {progress.files} files, {progress.stored} stored, "
        f"{progress.duplicates} already stored, {progress.exceptions} exceptions, "
        f"{progress.files_per_s:.0f} files/s",
        end="",
        file=sys.stderr,
        overwrite=True,
    )


def _revisions(engine) -> str:  # type: ignore[no-untyped-def]
    return ", ".join(sorted(db.current_revisions(engine))) or "empty (no migrations applied)"


def _worker(args: argparse.Namespace, engine, settings: Settings) -> int:  # type: ignore[no-untyped-def]
    import logging

    from services.bounces import mailbox
    from services.delivery import worker

    command_groups.require_current_schema(engine)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    readers = mailbox.companions(engine, settings)  # the bounce mailbox, when configured
    _say(f"worker stopped: {worker.run(engine, settings, once=args.once, companions=readers)}")
    return 0


def _scheduler(args: argparse.Namespace, engine, settings: Settings) -> int:  # type: ignore[no-untyped-def]
    from console import scheduler

    command_groups.require_current_schema(engine)
    if args.now and not args.once:
        raise ConsoleError("--now only goes with --once: a running scheduler uses the real clock")
    return scheduler.run(
        engine, settings, once=args.once, now=args.now, scan_minutes=args.scan_minutes
    )


def _moment(text: str) -> datetime:
    """An ISO time for --now; without an offset it is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO time like 2027-01-10T08:00-08:00: {text!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso_day(text: str) -> date:
    """A day for --received, like 2026-07-20."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date like 2026-07-20: {text!r}") from None


def _serve_ssh(args: argparse.Namespace, engine, settings: Settings) -> int:  # type: ignore[no-untyped-def]
    from console import ssh_server

    command_groups.require_current_schema(engine)
    configured = settings.extra.get("ssh", {})
    if not isinstance(configured, dict):
        raise ConsoleError("The [ssh] section of the config file must be a table")
    idle = args.idle_minutes if args.idle_minutes is not None else configured.get("idle_minutes")
    options = ssh_server.SSHOptions.in_data_dir(
        settings.data_dir,
        host=args.host or configured.get("host"),
        port=args.port if args.port is not None else configured.get("port"),
        host_key=args.host_key or _path(configured.get("host_key")),
        authorized_keys=args.authorized_keys or _path(configured.get("authorized_keys")),
        idle_timeout=float(idle) * 60 if idle is not None else None,
        **ssh_server.SSHOptions.limits(configured),
    )
    child_args = ["--database-url", settings.database_url, "--data-dir", str(settings.data_dir)]
    if args.config:
        child_args += ["--config", str(args.config)]
    ssh_server.serve(options, engine, ssh_server.prepared_launcher(child_args))
    return 0


def _path(value: object) -> Path | None:
    return Path(str(value)).expanduser() if value else None


def _with_operator(settings: Settings, operator: str) -> Settings:
    from dataclasses import replace

    return replace(settings, operator=operator)


def _progress(done: int, total: int) -> None:
    _say(f"seeding: {done}/{total} students", end="", file=sys.stderr, overwrite=True)


def _open(engine, settings: Settings) -> int:  # type: ignore[no-untyped-def]
    from services.access import operators
    from services.core.context import ConsoleContext

    operator = operators.resolve(engine, settings.operator)  # refuse before loading the UI
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        # e.g. `ssh -T host cmd` against a forced command: a screen drawn into a pipe would wait
        # for keys that never come, holding the connection open
        raise InvalidInput(
            "The console needs a terminal: connect with `ssh -t` (PuTTY and plain `ssh` do)"
        )
    from console.app import SSRConsoleApp

    SSRConsoleApp(ConsoleContext(engine, settings, operator), owns_process=True).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
