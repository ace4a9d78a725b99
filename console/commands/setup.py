"""``ssr-console setup``: create the LEA and its first coordinators, from flags or prompts."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy.engine import Engine

from console.output import say
from services.core.errors import ConsoleError
from services.core.settings import Settings

FLAGS = {
    "cds": "LEA CDS code (7 digits: county and district)",
    "name": "LEA name",
    "county": "county",
    "caaspp": "LEA CAASPP coordinator's username",
    "caaspp_name": "LEA CAASPP coordinator's full name",
    "caaspp_email": "LEA CAASPP coordinator's email",
    "elpac": "LEA ELPAC coordinator's username (the same as --caaspp if one person is both)",
    "elpac_name": "LEA ELPAC coordinator's full name",
    "elpac_email": "LEA ELPAC coordinator's email",
}


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "setup",
        help="set up a real LEA and its LEA CAASPP and ELPAC coordinators (safe to run again)",
        description="Creates the LEA and its first coordinators; asks for what the flags leave "
        "out when run in a terminal. Running it again with the same values changes nothing.",
    )
    for flag, text in FLAGS.items():
        parser.add_argument(f"--{flag.replace('_', '-')}", dest=flag, help=text)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    from services.accounts import lea_setup
    from services.core import db

    values = _complete(args)
    if values is None:
        return 2
    db.upgrade(engine)
    same_person = values["elpac"] == values["caaspp"]
    caaspp = lea_setup.Person(values["caaspp"], values["caaspp_name"], values["caaspp_email"])
    elpac = (
        caaspp
        if same_person
        else lea_setup.Person(values["elpac"], values["elpac_name"], values["elpac_email"])
    )
    try:
        result = lea_setup.setup(
            engine, values["cds"], values["name"], values["county"], caaspp, elpac
        )
    except ConsoleError as refusal:
        say(f"ssr-console setup: {refusal}", file=sys.stderr)
        return 1
    say(result)
    if result.changed:
        say(
            "Next: add the people who will use it with `ssr-console --operator "
            f"{values['caaspp']} operator add ...`, then `ssr-console serve-ssh`."
        )
    return 0


def _complete(args: argparse.Namespace) -> dict[str, str] | None:
    """The flags, with what is missing asked for in a terminal; None (usage) without one."""
    values = {flag: getattr(args, flag) for flag in FLAGS}
    if values["elpac"] and values["elpac"] == values["caaspp"]:
        values["elpac_name"] = values["elpac_name"] or values["caaspp_name"]
        values["elpac_email"] = values["elpac_email"] or values["caaspp_email"]
    optional = {"county", "caaspp_email", "elpac_email"}
    interactive = sys.stdin.isatty()
    for flag, text in FLAGS.items():
        if values[flag] is not None:
            continue
        if flag in ("elpac_name", "elpac_email") and values["elpac"] == values["caaspp"]:
            values[flag] = values[flag.replace("elpac", "caaspp")]
            continue
        if not interactive:
            if flag in optional:
                values[flag] = ""
                continue
            say(
                f"ssr-console setup: --{flag.replace('_', '-')} is needed ({text})", file=sys.stderr
            )
            return None
        values[flag] = input(f"{text}{' (optional)' if flag in optional else ''}: ").strip()
    return values
