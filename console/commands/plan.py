"""``ssr-console plan show | recommend``: the distribution plan and the advisor, as on the Advisor screen.

``plan recommend`` answers seed 000's four guiding questions, pre-filled as the screen pre-fills
them (the scope's saved plan, else the roster: guardians marked as portal users imply an SIS
portal, and the share of families using it); each flag overrides one answer:

1. ``--has-sis yes|no``            Do you have a Student Information System?
2. ``--sis-portal yes|no``         Do you use your SIS's parent portal?
3. ``--third-party-portal yes|no`` Do you use a third-party parent portal?
4. ``--portal-share PCT``          What % of guardians actively use the portal?

``--save`` saves the recommendation as the plan (``--channels B,C --reason TEXT`` overrules it).
The scope is the operator's: a site coordinator's school, anyone else's LEA. Acts as
``--operator``; exit 0 done, 1 refused (the sentence on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
from datetime import date
from typing import TYPE_CHECKING, Any

from console.output import say, say_json

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from services.access.tables import Operator
    from services.core.settings import Settings
    from services.plan.advisor import Draft
    from services.plan.decisions import SavedPlan

QUESTIONS = (
    ("--has-sis", "1. do you have a Student Information System (SIS)?"),
    ("--sis-portal", "2. do you use your SIS's parent portal?"),
    ("--third-party-portal", "3. do you use a third-party parent portal?"),
    ("--portal-share", "4. what %% of guardians actively use the portal?"),
)
"""Seed 000's four guiding questions as flags, in their order (``Draft.missing`` numbers them)."""


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from console.commands import add_group, add_json

    summary = "the distribution plan: show it, or recommend (and save) one"
    actions = add_group(commands, "plan", summary, __doc__, run)
    add_json(actions.add_parser("show", help="the plan in force and its history"))
    recommend = actions.add_parser(
        "recommend", help="the advisor's recommendation for the four answers (pre-filled)"
    )
    for flag, question in QUESTIONS[:3]:
        recommend.add_argument(flag, choices=("yes", "no"), help=question)
    recommend.add_argument(QUESTIONS[3][0], metavar="PCT", help=QUESTIONS[3][1])
    recommend.add_argument("--save", action="store_true", help="save it as the plan")
    recommend.add_argument(
        "--channels",
        metavar="LETTERS",
        help="with --save: overrule the recommendation with these channels, e.g. B,C",
    )
    recommend.add_argument("--reason", default="", help="with --channels: why (kept with the plan)")
    add_json(recommend)


def run(args: argparse.Namespace, engine: Engine, settings: Settings) -> int:
    from console.commands import as_operator, bad_usage

    if args.plan_command == "recommend" and args.channels and not args.save:
        return bad_usage("plan recommend", "--channels overrules a plan being saved: add --save")
    if args.plan_command == "recommend" and args.reason and not args.channels:
        return bad_usage("plan recommend", "--reason goes with --channels (an overrule)")
    action = _show if args.plan_command == "show" else _recommend
    return as_operator(
        engine,
        settings,
        f"plan {args.plan_command}",
        lambda operator: action(args, engine, settings, operator),
    )


def _show(args: argparse.Namespace, engine: Engine, settings: Settings, operator: Operator) -> int:
    from services.plan import decisions

    advice = decisions.advice_for(engine, operator)
    past = decisions.history(engine, operator, advice.school_id, limit=10)
    if args.json:
        say_json(
            {
                "plan": _plan_json(advice.saved) if advice.saved else None,
                "history": [_plan_json(p) for p in past],
            }
        )
        return 0
    say("Plan in force: " + decisions.summary_text(advice.saved, operator.language))
    if advice.saved is None:
        say("Save one with `ssr-console plan recommend --save`.")
    for saved in past:
        when = decisions.decided_when(saved.decided_at, operator.language)
        overruled = f"  overruled: {saved.reason}" if saved.overruled else ""
        say(f"  {when}  {saved.label}  by {saved.decided_by}{overruled}")
    return 0


def _recommend(
    args: argparse.Namespace, engine: Engine, settings: Settings, operator: Operator
) -> int:
    from services.channels import batches as channel_batches
    from services.core.channels import Option
    from services.core.errors import InvalidInput
    from services.plan import advisor, decisions

    advice = decisions.advice_for(engine, operator)
    draft = _answered(args, advice.draft)
    if missing := draft.missing():
        flags = ", ".join(f"{QUESTIONS[int(n) - 1][0]} (question {n})" for n in missing)
        raise InvalidInput(f"Answer {flags}: the roster and the saved plan do not say")
    answers = draft.required()
    rates = channel_batches.configured_rates(settings)
    rec = advisor.recommend(answers, advice.facts, rates)
    saved = None
    if args.save:
        channels = None
        if args.channels:
            try:
                channels = [Option(c.strip().upper()) for c in args.channels.split(",") if c]
            except ValueError:
                raise InvalidInput(
                    f"{args.channels!r} are not channels: type letters like B,C (A, B, C, D)"
                ) from None
        saved = decisions.save(
            engine,
            operator,
            answers,
            advice.facts,
            school_id=advice.school_id,
            channels=channels,
            reason=args.reason,
            rates=rates,
        )
    if args.json:
        say_json(
            {
                "scope": advice.facts.scope,
                "answers": {
                    "has_sis": answers.has_sis,
                    "sis_portal": answers.sis_portal,
                    "third_party_portal": answers.third_party_portal,
                    "portal_share": answers.portal_share,
                },
                "label": rec.label,
                "approach": rec.approach.value,
                "options": [o.value for o in rec.options],
                "cost": str(rec.allocation.cost),
                "channels": [
                    {
                        "option": c.option.value,
                        "families": c.families,
                        "ssrs": c.ssrs,
                        "cost": str(c.cost),
                        "reasons": [r.key for r in c.reasons],
                    }
                    for c in rec.allocation.channels
                ],
                "unreached_families": rec.allocation.unreached_families,
                "notes": [n.key for n in rec.notes],
                "saved": _plan_json(saved) if saved else None,
            }
        )
        return 0
    say(f"{advice.facts.scope}: {_answers_line(answers)}")
    say(advisor.recommendation_text(rec, advice.facts, date.today(), operator.language))
    if saved:
        say(f"\nPlan saved: {saved.label}" + (" (overruled)" if saved.overruled else ""))
    return 0


def _answered(args: argparse.Namespace, draft: Draft) -> Draft:
    """The pre-filled answers with the flags given on top."""
    from dataclasses import replace

    from services.plan.advisor import parse_share

    given: dict[str, Any] = {
        name: getattr(args, flag) == "yes"
        for name, flag in (
            ("has_sis", "has_sis"),
            ("sis_portal", "sis_portal"),
            ("third_party_portal", "third_party_portal"),
        )
        if getattr(args, flag) is not None
    }
    if args.portal_share is not None:
        given["portal_share"] = parse_share(args.portal_share)
    return replace(draft, **given)


def _answers_line(answers: Any) -> str:
    yes = {True: "yes", False: "no"}
    return (
        f"SIS {yes[answers.has_sis]}, SIS portal {yes[answers.sis_portal]}, third-party portal "
        f"{yes[answers.third_party_portal]}, portal share {answers.portal_share:.0%}"
    )


def _plan_json(saved: SavedPlan) -> dict[str, Any]:
    return {
        "id": saved.id,
        "school_id": saved.school_id,
        "label": saved.label,
        "channels": [o.value for o in saved.channels],
        "recommended": [o.value for o in saved.recommended],
        "overruled": saved.overruled,
        "reason": saved.reason,
        "families": saved.families,
        "ssrs": saved.ssrs,
        "cost": str(saved.cost),
        "figures": [
            {"option": f.option.value, "families": f.families, "ssrs": f.ssrs, "cost": str(f.cost)}
            for f in saved.figures
        ],
        "decided_by": saved.decided_by,
        "decided_at": saved.decided_at,
    }
