"""``ssr-console batch ...``: create, list, show and steer delivery batches, as on the Batches screens.

``batch create --channel email|notice|print|paper|portal --scope SCOPE`` reads SCOPE exactly as the
New batch screen does (``services.delivery.batches.parse_scope``: ``lea``, ``plan``, ``corrections``,
``grade 5``, ``school <CDS>``, ``group <name>``) and creates the batch through the service of its
screen: secure email (B, ``services.delivery.batches``), the notice telling families first (N,
``services.delivery.notices``; ``--send-at`` as on the notice screen), print locally (C), paper from
ETS (D) and the portal (A) through ``services.channels.by_scope``. It prints the batch id as the
Batches screen shows it (``B12``, ``N13``, ``C3``...), which every other subcommand takes (a bare
number is a secure-email or notice batch). ``--dry-run`` shows the preview and creates nothing.
``batch move-bounced B12 --to print|paper`` puts the families whose email bounced
(``services.bounces``) on print or paper as a new batch and prints its id.

Acts as ``--operator``. Exit 0 on success, 1 when refused (the sentence on stderr: a permission,
an unknown batch, school or group, a scope, program or year that does not parse), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from console.output import say, say_json

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from services.access.tables import Operator
    from services.core.settings import Settings
    from services.delivery.batches import Selection

CHANNELS = {"email": "B", "notice": "N", "print": "C", "paper": "D", "portal": "A"}
"""``--channel`` names and the letter each channel's batches carry on the Batches screen."""
DELIVERY_LETTERS = ("B", "N")
"""Secure-email and notice batches: one ledger (``services.delivery.ledger``), one id sequence."""


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from console.commands import add_group, add_json

    summary = "delivery batches: create, list, show, pause, resume, cancel, retry, resolve"
    actions = add_group(commands, "batch", summary, __doc__, run)
    create = actions.add_parser("create", help="create a batch (prints its id)")
    create.add_argument("--channel", required=True, choices=tuple(CHANNELS))
    create.add_argument(
        "--scope",
        required=True,
        nargs="+",
        metavar="SCOPE",
        help="as on the Batches screen: lea, plan, corrections, grade <n>, school <CDS>, "
        "group <name>",
    )
    create.add_argument("--program", default="", help="only this program's SSRs: CAASPP, ELPAC")
    create.add_argument("--year", default="", help="only this administration year's, e.g. 2026")
    create.add_argument("--name", help="the batch name (default: channel, scope and date)")
    create.add_argument(
        "--resend",
        metavar="REASON",
        help="email: send again SSRs families already have (the audit log keeps why)",
    )
    create.add_argument(
        "--send-at",
        default="",
        metavar="WHEN",
        help="notice: 2026-12-03 (8:00 where the LEA is) or '2026-12-03 16:30'; default now",
    )
    create.add_argument(
        "--dry-run", action="store_true", help="show what it would do; create nothing"
    )
    add_json(create)
    add_json(actions.add_parser("list", help="your batches of every channel, newest first"))
    show = actions.add_parser("show", help="one batch's progress")
    show.add_argument("id", metavar="ID", help="a batch id as listed: B12, N13, C3, D2, A1")
    add_json(show)
    for name, text in (
        ("pause", "pause a secure-email or notice batch"),
        ("resume", "resume a paused batch"),
        ("cancel", "cancel a batch (print, paper, portal: its students leave the channel)"),
    ):
        actions.add_parser(name, help=text).add_argument("id", metavar="ID")
    retry = actions.add_parser(
        "retry", help="send failed items again (a print run: print the families not yet printed)"
    )
    retry.add_argument("id", metavar="ID")
    retry.add_argument(
        "--now", action="store_true", help="instead: try the messages waiting for the relay now"
    )
    actions.add_parser(
        "received", help="an ETS paper order (D) arrived at the LEA (key v on its screen)"
    ).add_argument("id", metavar="ID")
    mailed = actions.add_parser(
        "mailed",
        help="a print run's (C) or paper order's (D) envelopes were mailed or handed out: "
        "only then are its families delivered (key e on its screen)",
    )
    mailed.add_argument("id", metavar="ID")
    mailed.add_argument(
        "--on", type=_day, metavar="YYYY-MM-DD", help="the day they went out (default today)"
    )
    bounced = actions.add_parser(
        "move-bounced",
        help="put the families whose email bounced on another channel, as a new batch",
    )
    bounced.add_argument("id", metavar="ID", help="a secure-email batch: B12")
    bounced.add_argument("--to", choices=("print", "paper"), default="print")
    bounced.add_argument("--name", default="", help="the new batch's name")
    resolve = actions.add_parser("resolve", help="decide an uncertain item (see `batch show`)")
    resolve.add_argument("id", metavar="ID")
    resolve.add_argument(
        "item", metavar="ITEM", type=int, help="the item number `batch show` lists"
    )
    decision = resolve.add_mutually_exclusive_group(required=True)
    decision.add_argument(
        "--delivered",
        action="store_true",
        help="it arrived (the relay's log or the family says so)",
    )
    decision.add_argument(
        "--not-delivered", action="store_true", help="it did not arrive: send it again"
    )
    decision.add_argument("--give-up", action="store_true", help="give up on this family here")
    resolve.add_argument("--reason", required=True, help="why (the audit log keeps it)")


def run(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    from console.commands import as_operator, bad_usage

    if args.batch_command == "create" and (misplaced := _misplaced(args)):
        return bad_usage("batch create", misplaced)
    return as_operator(
        engine,
        settings,
        f"batch {args.batch_command}",
        lambda operator: ACTIONS[args.batch_command](args, engine, settings, operator),
    )


def _misplaced(args: argparse.Namespace) -> str:
    """An option that only another kind of batch takes (bad usage, exit 2), or nothing."""
    if args.resend is not None and args.channel != "email":
        return "--resend goes with --channel email"
    if args.send_at and args.channel != "notice":
        return "--send-at goes with --channel notice"
    if args.channel == "notice" and (args.program or args.year):
        return "a notice carries no SSRs: --program and --year narrow SSR batches"
    return ""


# --- create ---------------------------------------------------------------------------------------


def _create(
    args: argparse.Namespace, engine: Engine, settings: Settings, operator: Operator
) -> int:
    from services.core.columns import utcnow
    from services.delivery import batches

    scope_text = " ".join(args.scope)
    selection = batches.narrowed(
        batches.parse_scope(engine, operator, scope_text), args.program, args.year
    )
    name = args.name or f"{args.channel.capitalize()} {scope_text} {utcnow():%Y-%m-%d %H:%M}"
    new = NewBatch(args, engine, settings, operator, selection, name, CHANNELS[args.channel])
    if new.letter == "B":
        return _create_email(new)
    if new.letter == "N":
        return _create_notice(new)
    return _create_channel(new)


@dataclass(frozen=True)
class NewBatch:
    """What ``batch create`` was asked for, the typed scope read, as the acting operator."""

    args: argparse.Namespace
    engine: Engine
    settings: Settings
    operator: Operator
    selection: Selection
    name: str
    letter: str


def _create_email(new: NewBatch) -> int:
    from services.delivery import batches

    policy = batches.PasswordPolicy.from_settings(new.settings)
    resend = new.args.resend
    if new.args.dry_run:
        preview = batches.dry_run(
            new.engine, new.operator, new.selection, resend=resend is not None
        )
        figures = {
            "families": preview.families,
            "guardians": preview.guardians,
            "ssrs": preview.ssrs,
            "without_email": preview.without_email,
            "by_language": preview.by_language,
            "left_out_sent": preview.left_out_sent,
            "left_out_under_way": preview.left_out_under_way,
            "left_out_families": preview.left_out_families,
            "resend": preview.resend,
            "password_channel": policy.channel,
            "subjects": {
                s.language: [s.document.subject, s.password.subject] for s in preview.samples
            },
        }
        sending = batches.dry_run_sending_time(
            new.engine,
            new.settings,
            new.operator,
            new.selection,
            preview,
            by_sms=policy.channel == "sms",
        )
        figures["sending"] = {
            "messages": sending.messages,
            "minutes": sending.duration.total_seconds() / 60 if sending.duration else None,
            "days": sending.days,
            "last_day": sending.last_day.isoformat(),
            "deadline": sending.deadline.isoformat() if sending.deadline else None,
            "late": sending.late,
        }
        text = (
            f"{preview.families:,} families (households of {preview.guardians:,} entitled "
            f"guardians) would get {preview.ssrs:,} SSRs by email; "
            f"{preview.without_email:,} families in this scope have no email address.\n"
            f"Left out: {preview.left_out_sent:,} SSRs already sent, "
            f"{preview.left_out_under_way:,} in another batch.\n"
            f"Passwords go by {policy.channel}.\n{sending.text()}"
        )
        return _dry_run(new, text, figures)
    batch_id = batches.create(
        new.engine,
        new.operator,
        new.selection,
        name=new.name,
        password_channel=policy.channel,
        password_delay=policy.delay,
        resend_reason=resend,
    )
    return _created_delivery(new, batch_id)


def _create_notice(new: NewBatch) -> int:
    from services.delivery import notices

    settings = new.settings
    send_at = notices.parse_send_at(new.args.send_at, settings)
    if new.args.dry_run:
        found = notices.preview(new.engine, settings, new.operator, new.selection, send_at)
        when = f"{send_at.astimezone(notices.lea_zone(settings)):%Y-%m-%d %H:%M %Z}"
        figures = {
            "families": found.families,
            "without_email": found.without_email,
            "by_language": found.by_language,
            "sender": found.sender,
            "password_channel": found.password_channel,
            "send_at": found.send_at.isoformat(),
            "subjects": {s.language: s.subject for s in found.samples},
        }
        text = (
            f"{found.families:,} families would be told on {when}; {found.without_email:,} "
            f"families in this scope have no email address.\nIt names the sender {found.sender} "
            f"and says the password comes by {found.password_channel}."
        )
        return _dry_run(new, text, figures)
    batch_id = notices.create(
        new.engine, settings, new.operator, new.selection, name=new.name, send_at=send_at
    )
    return _created_delivery(new, batch_id)


def _created_delivery(new: NewBatch, batch_id: int) -> int:
    from services.delivery import batches

    batch = batches.get_batch(new.engine, new.operator, batch_id)
    return _created(new, batch_id, f"{batch.total_items:,} families")


def _create_channel(new: NewBatch) -> int:
    from services.channels import by_scope
    from services.core.channels import Option

    channel = Option(new.letter)
    if new.args.dry_run:
        found = by_scope.preview(new.engine, new.settings, new.operator, channel, new.selection)
        return _dry_run(new, found.text, found.figures)
    batch = by_scope.create(
        new.engine, new.settings, new.operator, channel, new.selection, name=new.name
    )
    assert batch.id is not None
    return _created(new, batch.id, f"{batch.families:,} families, {batch.students:,} students")


def _dry_run(new: NewBatch, text: str, figures: dict[str, Any]) -> int:
    if new.args.json:
        say_json({"dry_run": True, "channel": new.letter, **figures})
    else:
        say(f"Dry run, nothing created:\n{text}")
    return 0


def _created(new: NewBatch, number: int, held: str) -> int:
    """The id alone on stdout (``id=$(ssr-console batch create ...)``), what it holds on stderr."""
    batch_id = f"{new.letter}{number}"
    if new.args.json:
        say_json({"id": batch_id, "channel": new.letter, "number": number, "name": new.name})
    else:
        say(batch_id)
    say(f"batch {batch_id} created: {held}", file=sys.stderr)
    return 0


# --- reading --------------------------------------------------------------------------------------


def _list(args: argparse.Namespace, engine: Engine, settings: Settings, operator: Operator) -> int:
    from services.delivery import batches

    found = batches.list_batches(engine, operator)
    if args.json:
        say_json(
            [
                {
                    "id": f"{b.channel}{b.id}",
                    "channel": b.channel,
                    "number": b.id,
                    "name": b.name,
                    "status": b.status.value,
                    "total": b.total,
                    "done": b.done,
                    "failed": b.failed,
                    "uncertain": b.uncertain,
                    "created_by": b.created_by,
                    "created_at": b.created_at.isoformat(),
                }
                for b in found
            ]
        )
        return 0
    if not found:
        say("No batches yet.")
    for b in found:
        say(
            f"{b.channel}{b.id:<6} {b.status.value:<9} {b.done:>7,}/{b.total:<7,} "
            f"failed {b.failed:,}, uncertain {b.uncertain:,}  {b.name} (by {b.created_by}, "
            f"{b.created_at:%Y-%m-%d %H:%M})"
        )
    return 0


@dataclass(frozen=True)
class BatchRef:
    """A batch id as the Batches screen shows it: its channel's letter and its number."""

    letter: str
    number: int

    def __str__(self) -> str:
        return f"{self.letter}{self.number}"

    @property
    def delivery(self) -> bool:
        return self.letter in DELIVERY_LETTERS


def batch_ref(text: str) -> BatchRef:
    """``B12``, ``N13``, ``C3``, ``D2``, ``A1``, or a bare number (a secure-email or notice batch)."""
    from services.core.errors import InvalidInput

    typed = text.strip().upper()
    letter, digits = (typed[:1], typed[1:]) if typed[:1].isalpha() else ("", typed)
    if letter not in ("", *CHANNELS.values()) or not digits.isdigit():
        raise InvalidInput(
            f"{text!r} is not a batch id: type one as `batch list` shows it, like B12 or C3"
        )
    return BatchRef(letter or "B", int(digits))


def _delivery_batch(engine: Engine, operator: Operator, ref: BatchRef) -> Any:
    """The secure-email or notice batch ``ref`` names, if the operator may see it."""
    from services.core.errors import NotFound
    from services.delivery import batches
    from services.delivery.ledger import BatchKind

    try:
        batch = batches.get_batch(engine, operator, ref.number)
    except NotFound:
        batch = None
    if batch is None or ref.letter == "N" and batch.kind is not BatchKind.NOTICE:
        raise NotFound(f"There is no batch {ref} you can see")
    return batch


def _channel_batch(engine: Engine, operator: Operator, ref: BatchRef) -> Any:
    """The print, paper or portal batch ``ref`` names, if the operator may see it."""
    from services.channels import batches as channel_batches
    from services.core.errors import NotFound

    try:
        batch = channel_batches.get(engine, operator, ref.number)
    except NotFound:
        batch = None
    if batch is None or batch.channel != ref.letter:
        raise NotFound(f"There is no batch {ref} you can see")
    return batch


def _show(args: argparse.Namespace, engine: Engine, settings: Settings, operator: Operator) -> int:
    ref = batch_ref(args.id)
    shown = (
        _delivery_progress(engine, operator, ref)
        if ref.delivery
        else _channel_progress(engine, operator, ref)
    )
    if args.json:
        say_json(shown)
        return 0
    say(
        f"{shown['id']} {shown['name']}: {shown['status']}, created by {shown['created_by']} "
        f"{shown['created_at']:%Y-%m-%d %H:%M}"
    )
    say("  " + ", ".join(f"{state} {n:,}" for state, n in shown["states"].items()))
    for school in shown.get("schools", []):
        say(
            f"  {school['school']}: {school['done']:,}/{school['total']:,} done, "
            f"{school['failed']:,} failed, {school['uncertain']:,} uncertain"
        )
    for problem in shown.get("problems", []):
        say(f"  item {problem['item']}: {problem['state']}: {problem['reason']}")
    for key, value in shown.get("detail", {}).items():
        say(f"  {key}: {value}")
    if shown.get("workers") == 0 and shown.get("remaining_messages"):
        say("  No worker is running: start `ssr-console worker` to send the rest.")
    return 0


def _delivery_progress(engine: Engine, operator: Operator, ref: BatchRef) -> dict[str, Any]:
    import socket

    from services.delivery import batches

    _delivery_batch(engine, operator, ref)
    found = batches.progress(engine, operator, ref.number, host=socket.gethostname())
    batch = found.batch
    return {
        "id": str(BatchRef("N" if batch.kind.value == "notice" else "B", ref.number)),
        "name": batch.name,
        "kind": batch.kind.value,
        "status": batch.status.value,
        "created_by": batch.created_by,
        "created_at": batch.created_at,
        "total": found.total,
        "done": found.done,
        "states": {state.value: n for state, n in found.counts.items()},
        "schools": [
            {
                "school": s.school,
                "total": s.total,
                "done": s.done,
                "failed": s.failed,
                "uncertain": s.uncertain,
            }
            for s in found.schools
        ],
        "problems": [
            {"item": p.item_id, "state": p.state.value, "school": p.school, "reason": p.reason}
            for p in found.problems
        ],
        "remaining_messages": found.remaining_messages,
        "workers": found.workers.running,
        "send_at": batch.send_at,
        "resend_reason": batch.resend_reason,
    }


def _channel_progress(engine: Engine, operator: Operator, ref: BatchRef) -> dict[str, Any]:
    from services.channels import batches as channel_batches

    batch = _channel_batch(engine, operator, ref)
    states = channel_batches.progress(engine, operator, ref.number)
    return {
        "id": str(ref),
        "name": batch.name,
        "kind": ref.letter,
        "status": batch.status.value,
        "created_by": batch.created_by,
        "created_at": batch.created_at,
        "families": batch.families,
        "students": batch.students,
        "ssrs": batch.ssrs,
        "pages": batch.pages,
        "cost_cents": batch.cost_cents,
        "states": {state.value: n for state, n in states.items()},
        "detail": channel_batches.details(batch),
    }


# --- steering -------------------------------------------------------------------------------------

PAST = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}


def _set_status(
    args: argparse.Namespace, engine: Engine, settings: Settings, operator: Operator
) -> int:
    from services.channels import batches as channel_batches
    from services.core.errors import InvalidInput
    from services.delivery import batches
    from services.delivery.ledger import BatchStatus

    ref = batch_ref(args.id)
    command = args.batch_command
    if not ref.delivery:
        if command != "cancel":
            raise InvalidInput(
                f"Batch {ref} is a print, paper or portal batch: only secure-email and notice "
                "batches pause and resume"
            )
        _channel_batch(engine, operator, ref)
        channel_batches.cancel(engine, operator, ref.number)
    else:
        _delivery_batch(engine, operator, ref)
        status = {
            "pause": BatchStatus.PAUSED,
            "resume": BatchStatus.RUNNING,
            "cancel": BatchStatus.CANCELLED,
        }[command]
        batches.set_status(engine, operator, ref.number, status)
    say(f"batch {ref} {PAST[command]}")
    return 0


def _retry(args: argparse.Namespace, engine: Engine, settings: Settings, operator: Operator) -> int:
    from services.channels import print_batch
    from services.core.errors import InvalidInput
    from services.delivery import batches

    ref = batch_ref(args.id)
    if ref.letter == "C" and not args.now:
        _channel_batch(engine, operator, ref)
        print_batch.queue(engine, operator, ref.number)
        say(f"batch {ref} queued: `ssr-console worker` prints the families not yet printed")
        return 0
    if not ref.delivery:
        raise InvalidInput(f"Batch {ref} sends no messages: there is nothing to retry")
    _delivery_batch(engine, operator, ref)
    if args.now:
        count = batches.retry_now(engine, operator, ref.number)
        say(f"batch {ref}: {count:,} waiting messages will be tried now")
    else:
        count = batches.retry_failed(engine, operator, ref.number)
        say(f"batch {ref}: {count:,} failed items will be sent again")
    return 0


def _resolve(
    args: argparse.Namespace, engine: Engine, settings: Settings, operator: Operator
) -> int:
    from services.core.errors import InvalidInput
    from services.delivery import batches
    from services.delivery.ledger import Resolution

    ref = batch_ref(args.id)
    if not ref.delivery:
        raise InvalidInput(f"Batch {ref} sends no messages: it has no uncertain items")
    _delivery_batch(engine, operator, ref)
    if not args.reason.strip():
        raise InvalidInput("Say why with --reason: the audit log keeps it")
    resolution = (
        Resolution.SENT
        if args.delivered
        else Resolution.RESEND
        if args.not_delivered
        else Resolution.FAIL
    )
    state = batches.resolve(
        engine, operator, args.item, resolution, args.reason.strip(), batch_id=ref.number
    )
    say(f"batch {ref} item {args.item}: {state.label}")
    return 0


def _seen_channel_batch(engine: Engine, operator: Operator, typed: str) -> BatchRef:
    """The print, paper or portal batch an id names, once the operator may see it."""
    ref = batch_ref(typed)
    _channel_batch(engine, operator, ref)
    return ref


def _received(
    args: argparse.Namespace, engine: Engine, settings: Settings, operator: Operator
) -> int:
    from services.channels import paper_order

    ref = _seen_channel_batch(engine, operator, args.id)
    paper_order.mark_received(engine, operator, ref.number)
    say(f"batch {ref} received at the LEA: `batch mailed {ref}` once it is mailed or handed out")
    return 0


def _mailed(
    args: argparse.Namespace, engine: Engine, settings: Settings, operator: Operator
) -> int:
    from services.channels import batches as channel_batches
    from services.core.columns import utcnow

    ref = _seen_channel_batch(engine, operator, args.id)
    day = args.on or utcnow().date()
    moved = channel_batches.confirm_delivered(engine, operator, ref.number, day)
    say(f"batch {ref}: {moved:,} students delivered on {day:%Y-%m-%d}")
    return 0


def _day(text: str) -> date:
    """A day for --on, like 2026-09-14."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day like 2026-09-14: {text!r}") from None


def _move_bounced(
    args: argparse.Namespace, engine: Engine, settings: Settings, operator: Operator
) -> int:
    from services.bounces import moves
    from services.core.channels import Option
    from services.core.errors import InvalidInput

    ref = batch_ref(args.id)
    if ref.letter != "B":
        raise InvalidInput(f"Batch {ref} sends no SSRs by email: nothing of it can bounce")
    _delivery_batch(engine, operator, ref)
    letter = CHANNELS[args.to]
    moved = moves.move_bounced(engine, settings, operator, ref.number, Option(letter), args.name)
    say(f"{letter}{moved.id}")
    say(
        f"batch {ref}: {moved.families:,} bounced families, {moved.students:,} students moved "
        f"to {letter}{moved.id}",
        file=sys.stderr,
    )
    return 0


ACTIONS = {
    "received": _received,
    "mailed": _mailed,
    "create": _create,
    "list": _list,
    "show": _show,
    "pause": _set_status,
    "resume": _set_status,
    "cancel": _set_status,
    "retry": _retry,
    "resolve": _resolve,
    "move-bounced": _move_bounced,
}
