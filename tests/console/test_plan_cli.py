"""``ssr-console plan show | recommend`` against the seeded demo LEA: the four answers pre-filled
from the roster, flags on top, saving and overruling with the advisor's permissions and audit events,
and the plan then choosing a batch's families (issue 20)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from services.audit.tables import AuditEvent
from tests.console.conftest import Cli

ANSWERS = ("--has-sis", "yes", "--third-party-portal", "no", "--portal-share", "5")


def _actions(cli: Cli) -> list[str]:
    with Session(cli.engine) as session:
        return list(
            session.exec(select(AuditEvent.action).where(col(AuditEvent.action).like("plan.%")))
        )


def test_a_recommendation_is_saved_and_then_chooses_batch_families(demo_cli: Cli) -> None:
    assert demo_cli("plan", "show", "--json").json() == {"plan": None, "history": []}
    unsaved = demo_cli("plan", "show").ok()
    assert "No plan saved yet" in unsaved and "plan recommend --save" in unsaved
    assert "Press" not in unsaved  # a screen's key means nothing on the command line
    # The roster marks portal users: an SIS with a portal is pre-filled; question 3 is not known
    demo_cli("plan", "recommend").refused("Answer --third-party-portal (question 3)")
    demo_cli("batch", "create", "--channel", "email", "--scope", "plan").refused(
        "There is no distribution plan yet"
    )

    looked = demo_cli("plan", "recommend", *ANSWERS, "--json").json()
    assert looked["answers"]["has_sis"] is True and looked["answers"]["portal_share"] == 0.05
    assert looked["options"] == ["B", "C"] and looked["saved"] is None
    assert sum(c["families"] for c in looked["channels"]) > 0
    assert demo_cli("plan", "show", "--json").json()["plan"] is None  # not saved

    saved = demo_cli("plan", "recommend", *ANSWERS, "--save", "--json").json()["saved"]
    assert saved["label"] == "Combined: B + C" and saved["decided_by"] == "caaspp"
    shown = demo_cli("plan", "show", "--json").json()
    assert shown["plan"]["id"] == saved["id"] and len(shown["history"]) == 1
    assert "Combined: B + C" in demo_cli("plan", "show").ok()
    # the saved answers pre-fill the next recommendation
    assert "portal share 5%" in demo_cli("plan", "recommend").ok()

    email = demo_cli("batch", "create", "--channel", "email", "--scope", "plan").ok().strip()
    printed = demo_cli("batch", "create", "--channel", "print", "--scope", "plan").ok().strip()
    assert email.startswith("B") and printed.startswith("C")
    assert _actions(demo_cli) == ["plan.save"]


def test_an_overrule_needs_a_reason_and_is_audited(demo_cli: Cli) -> None:
    overrule = ("plan", "recommend", *ANSWERS, "--save", "--channels", "B,D")
    demo_cli(*overrule).refused("Say why you overrule the recommendation")
    saved = demo_cli(*overrule, "--reason", "No printer this year", "--json").json()["saved"]
    assert saved["overruled"] is True and saved["channels"] == ["B", "D"]
    assert saved["recommended"] == ["B", "C"]
    assert "overruled: No printer this year" in demo_cli("plan", "show").ok()
    assert _actions(demo_cli) == ["plan.overrule"]


def test_plan_refusals_and_bad_usage(sqlite_cli: Cli) -> None:
    run = sqlite_cli
    run("plan", "recommend", *ANSWERS, "--save", operator="helpdesk").refused(
        "A help desk may not choose the distribution plan"
    )
    run("plan", "recommend", *ANSWERS, "--save", operator="site").refused(
        "may not choose the distribution plan"
    )
    assert run("plan", "show", operator="helpdesk").ok().startswith("Plan in force")
    run("plan", "recommend", *ANSWERS[:4], "--portal-share", "lots").refused(
        "Portal usage must be a number from 0 to 100"
    )
    run("plan", "recommend", *ANSWERS, "--save", "--channels", "B,X", "--reason", "r").refused(
        "are not channels"
    )
    run("plan", "recommend", *ANSWERS, "--save", "--channels", "C,D", "--reason", "r").refused(
        "Choose one paper channel"
    )
    run("plan", "recommend", *ANSWERS, "--channels", "B").refused("add --save", 2)
    run("plan", "recommend", *ANSWERS, "--reason", "why").refused("--reason goes with", 2)
    run("plan", "recommend", "--has-sis", "maybe").refused("invalid choice", 2)
    run("plan").refused("required", 2)
    assert _actions(run) == []
