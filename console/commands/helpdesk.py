"""``ssr-console helpdesk find QUERY | timeline SSID``: the Help desk screen (key h) from a shell.

``find`` takes what a caller gives, as the screen's search box does: an SSID (or its first digits),
a name ("last first"), an email address or a phone number. ``timeline`` shows one student's family
as the family screen does: contacts, channel, secure-email deliveries and everything that happened
to the SSRs, never a score or a password (``services.helpdesk.families``; addresses in audit
details stay masked). Acts as ``--operator`` (a site coordinator: families of their school);
exit 0 done, 1 refused, 2 bad usage.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from console.output import say, say_json

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from services.access.tables import Operator
    from services.core.settings import Settings


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from console.commands import add_group, add_json

    summary = "find a family and read what happened to its SSRs"
    actions = add_group(commands, "helpdesk", summary, __doc__, run)
    find = actions.add_parser("find", help="families by SSID, name, email or phone")
    find.add_argument("query", nargs="+", metavar="QUERY", help="SSID, last first, email, phone")
    add_json(find)
    timeline = actions.add_parser("timeline", help="one student's family and SSR timeline")
    timeline.add_argument("ssid", metavar="SSID")
    add_json(timeline)


def run(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    from console.commands import as_operator

    act = _find if args.helpdesk_command == "find" else _timeline
    return as_operator(
        engine,
        settings,
        f"helpdesk {args.helpdesk_command}",
        lambda operator: act(args, engine, operator),
    )


def _find(args: argparse.Namespace, engine: Engine, operator: Operator) -> int:
    from dataclasses import asdict

    from services.helpdesk import families

    query = " ".join(args.query)
    hits = families.search(engine, operator, query)
    if args.json:
        say_json([asdict(h) for h in hits])
        return 0
    if not hits:
        say(f"Nothing found for {query!r}.")
        return 0
    for h in hits:
        say(f"{h.ssid}  {h.student} (grade {h.grade}, {h.school})  {h.guardian}  {h.contact}")
    if len(hits) >= families.SEARCH_LIMIT:
        say(f"(the first {families.SEARCH_LIMIT}; type more to narrow it)")
    return 0


def _timeline(args: argparse.Namespace, engine: Engine, operator: Operator) -> int:
    from dataclasses import asdict

    from services.helpdesk import families

    family = families.family_by_ssid(engine, operator, args.ssid)
    if args.json:
        say_json(asdict(family))
        return 0
    say(f"{family.student} · SSID {family.ssid} · grade {family.grade} · {family.school}")
    for c in family.contacts:
        role = "primary" if c.primary else c.relationship
        reach = " · ".join(x for x in (c.email or "no email", c.phone) if x)
        say(f"{c.name} ({role}, {c.language}): {reach}")
    say(f"Channel: {family.channel}")
    for d in family.deliveries:
        say(f"Secure email: batch {d.batch_id} item {d.item_id}, {d.state}, to {d.address}")
    for event in family.events:
        say(
            f"  {event.at:%Y-%m-%d %H:%M}  {event.text}"
            if event.at
            else f"  now               {event.text}"
        )
    return 0
