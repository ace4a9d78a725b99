"""``ssr-console notices [--due]``: the reminder inbox, as on the Notices screen (key n).

The scheduler (``ssr-console scheduler``) writes the notices; this reads them: whether the
scheduler is alive, the notices that reached you (``inbox``), those it plans next for your LEA
(``upcoming``; the technology coordinator sees every LEA's) and those whose email keeps failing.
``--due`` keeps only the notices whose day has come (today or earlier, where the LEA is): in
the inbox, and planned ones the scheduler has not sent yet, a sign it is not running. Acts as
``--operator``; exit 0 done, 1 refused, 2 bad usage.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from console.output import say, say_json

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from services.access.tables import Operator
    from services.core.settings import Settings
    from services.reminders.ledger import Notice


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from console.commands import add_json

    parser = commands.add_parser(
        "notices",
        help="the reminder inbox: deadlines, credential expiry, audit anchors",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--due", action="store_true", help="only the notices whose day has come (today or earlier)"
    )
    add_json(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    from console.commands import as_operator

    return as_operator(
        engine, settings, "notices", lambda operator: _notices(args, engine, settings, operator)
    )


def _notices(
    args: argparse.Namespace, engine: Engine, settings: Settings, operator: Operator
) -> int:
    from services.core.columns import utcnow
    from services.delivery.notices import lea_zone
    from services.reminders import ledger, scheduler_lock

    now = utcnow()
    view = ledger.view_for(engine, operator)
    status = scheduler_lock.status(engine, now)
    today = now.astimezone(lea_zone(settings)).date()
    lists = {"inbox": view.inbox, "upcoming": view.upcoming, "failures": view.failures}
    if args.due:
        lists = {
            "inbox": [n for n in view.inbox if n.due_on <= today],
            "upcoming": [n for n in view.upcoming if n.due_on <= today],
        }
    if args.json:
        say_json(
            {
                "scheduler": {
                    "running": status.running,
                    "heartbeat_at": status.heartbeat_at,
                    "last_scan_at": status.last_scan_at,
                    "last_scan_summary": status.last_scan_summary,
                    "last_error": status.last_error,
                },
                "counts": vars(view.counts),
                **{name: [_as_json(n) for n in found] for name, found in lists.items()},
            }
        )
        return 0
    say(status.describe(now))
    if status.last_error:
        say(f"Last error: {status.last_error}")
    titles = {
        "inbox": "Inbox",
        "upcoming": "Planned, not sent yet",
        "failures": "Email failing (retried)",
    }
    for name, found in lists.items():
        say(f"{titles[name]}: {len(found) or 'none'}")
        for notice in found:
            say(f"  {_line(notice)}")
    return 0


def _line(notice: Notice) -> str:
    from services.reminders.ledger import about

    state = notice.state.value + (" late" if notice.late else "")
    new = "" if notice.read_at else ", new"
    failing = f", {notice.attempts} tries: {notice.last_error}" if notice.last_error else ""
    return (
        f"{notice.due_on:%Y-%m-%d}  {about(notice)}  (to {notice.recipient}, {state}{new}{failing})"
    )


def _as_json(notice: Notice) -> dict[str, Any]:
    from services.reminders.ledger import about

    return {
        "id": notice.id,
        "kind": notice.kind.value,
        "about": about(notice),
        "recipient": notice.recipient,
        "due_on": notice.due_on,
        "event_on": notice.event_on,
        "state": notice.state.value,
        "late": notice.late,
        "read": notice.read_at is not None,
        "program": notice.program,
        "pending": notice.pending,
        "attempts": notice.attempts,
        "last_error": notice.last_error,
    }
