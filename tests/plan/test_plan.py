"""Roster facts by SQL aggregates and the saved plan: history, overrules, permissions, audit, and
the channel each family is on (in Python and in SQL), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.audit import log as audit
from services.audit.tables import AuditEvent
from services.core import db
from services.core.channels import Option
from services.core.errors import InvalidInput, NotFound, PermissionDenied
from services.plan import decisions as plan
from services.plan.advisor import Answers, FamilyGroup, RosterFacts
from services.roster.facts import roster_facts
from services.roster.tables import Guardian, Student
from tests import advisor_roster

A, B, C, D = Option.PORTAL, Option.SECURE, Option.PRINT, Option.PAPER
HALF = Answers(has_sis=True, sis_portal=True, third_party_portal=False, portal_share=0.5)


@pytest.fixture
def any_engine(migrated_url: str) -> Iterator[Engine]:
    engine = db.make_engine(migrated_url)
    yield engine
    engine.dispose()


def test_roster_facts_count_families_and_ssrs(any_engine: Engine) -> None:
    roster = advisor_roster.build(any_engine)
    facts = roster_facts(any_engine, roster.lea_id)
    assert facts.scope == "Sample Unified"
    assert facts.students == 9 and facts.families == 6  # g6 is s9's second guardian
    assert facts.groups == (
        FamilyGroup(portal=True, email=True, address=True, families=1, ssrs=4),
        FamilyGroup(portal=True, email=False, address=True, families=1, ssrs=1),
        FamilyGroup(portal=False, email=True, address=True, families=1, ssrs=1),
        FamilyGroup(portal=False, email=False, address=True, families=2, ssrs=2),
        FamilyGroup(portal=False, email=False, address=False, families=1, ssrs=1),
    )
    assert (facts.unlinked_students, facts.unlinked_ssrs, facts.ssrs) == (1, 1, 10)
    assert facts.portal_share == pytest.approx(2 / 6)
    assert not facts.ssrs_estimated

    alder = roster_facts(any_engine, roster.lea_id, roster.alder_id)
    assert (alder.scope, alder.students, alder.families, alder.ssrs) == (
        "Alder Elementary",
        5,
        4,
        6,
    )
    assert alder.portal_families == 1 and alder.unlinked_students == 0


def test_roster_facts_estimate_one_ssr_per_student_before_intake(engine: Engine) -> None:
    roster = advisor_roster.build(engine, reports=False)
    facts = roster_facts(engine, roster.lea_id)
    assert facts.ssrs_estimated
    assert facts.ssrs == 9  # one per student, each counted once


def test_roster_facts_of_an_empty_lea_and_unknown_scopes(engine: Engine) -> None:
    roster = advisor_roster.build(engine)
    with Session(engine) as session:
        other = session.exec(select(Guardian).where(Guardian.lea_id != roster.lea_id)).one()
    empty = roster_facts(engine, other.lea_id)
    assert empty.empty and empty.portal_share is None and empty.groups == ()
    with pytest.raises(NotFound):
        roster_facts(engine, 999)
    with pytest.raises(NotFound, match="No school"):
        roster_facts(engine, other.lea_id, roster.alder_id)


def test_save_history_and_overrule_with_audit(any_engine: Engine) -> None:
    roster = advisor_roster.build(any_engine)
    caaspp, elpac = roster.operators["caaspp"], roster.operators["elpac"]
    facts = roster_facts(any_engine, roster.lea_id)
    first = plan.save(any_engine, caaspp, HALF, facts)
    assert first.channels == (A, B, C) and not first.overruled
    assert [f.families for f in first.figures] == [2, 1, 3]
    with pytest.raises(InvalidInput, match="Say why"):
        plan.save(any_engine, elpac, HALF, facts, channels=[B, D], reason="  ")
    second = plan.save(
        any_engine, elpac, HALF, facts, channels=[D, B], reason="Print shop closed  in summer"
    )
    assert second.channels == (B, D) and second.recommended == (A, B, C)
    assert second.overruled and second.reason == "Print shop closed in summer"
    assert second.cost > 0

    assert plan.current(any_engine, roster.lea_id) == second
    history = plan.history(any_engine, roster.operators["helpdesk"])
    assert [(p.decided_by, p.overruled) for p in history] == [("elpac", True), ("caaspp", False)]
    assert history[0].decided_at >= history[1].decided_at
    with Session(any_engine) as session:
        events = session.exec(select(AuditEvent).order_by(AuditEvent.seq)).all()
    assert [(e.action, e.operator, e.target) for e in events] == [
        ("plan.save", "caaspp", "lea:1234567"),
        ("plan.overrule", "elpac", "lea:1234567"),
    ]
    assert "Print shop closed in summer" in events[1].detail
    assert audit.verify(any_engine).ok


def test_only_coordinators_may_save(engine: Engine) -> None:
    roster = advisor_roster.build(engine)
    facts = roster_facts(engine, roster.lea_id)
    for who in ("site", "tech", "helpdesk"):
        with pytest.raises(PermissionDenied, match="may not choose the distribution plan"):
            plan.save(engine, roster.operators[who], HALF, facts)
    assert plan.current(engine, roster.lea_id) is None
    with Session(engine) as session:
        assert session.exec(select(AuditEvent)).all() == []


def test_bad_choices_are_refused_and_nothing_is_written(engine: Engine) -> None:
    roster = advisor_roster.build(engine)
    facts = roster_facts(engine, roster.lea_id)
    caaspp = roster.operators["caaspp"]
    for channels, message in [([], "at least one"), ([C, D], "one paper channel")]:
        with pytest.raises(InvalidInput, match=message):
            plan.save(engine, caaspp, HALF, facts, channels=channels, reason="x")
    with pytest.raises(InvalidInput, match="under 500"):
        plan.save(engine, caaspp, HALF, facts, channels=[C], reason="x" * 501)
    with pytest.raises(NotFound):
        plan.save(engine, caaspp, HALF, facts, school_id=999)
    assert plan.history(engine, caaspp) == []


def test_a_school_plan_overrides_the_lea_plan_for_that_school(engine: Engine) -> None:
    roster = advisor_roster.build(engine)
    caaspp = roster.operators["caaspp"]
    lea_plan = plan.save(engine, caaspp, HALF, roster_facts(engine, roster.lea_id))
    birch = roster_facts(engine, roster.lea_id, roster.birch_id)
    birch_plan = plan.save(
        engine, caaspp, HALF, birch, school_id=roster.birch_id, channels=[D], reason="no printer"
    )
    assert plan.current(engine, roster.lea_id, roster.birch_id) == birch_plan
    assert plan.current(engine, roster.lea_id, roster.alder_id) == lea_plan
    # The site coordinator (Alder) sees the LEA plan on the dashboard.
    assert plan.dashboard_text(engine, roster.operators["site"]).startswith("Combined: A + B + C")
    g3 = roster.guardians["g3"]
    assert plan.guardian_channel(engine, g3) is C
    assert plan.guardian_channel(engine, g3, roster.birch_id) is D


def test_family_channels_in_python_and_sql_agree(any_engine: Engine) -> None:
    roster = advisor_roster.build(any_engine, other_lea=False)
    assert plan.guardian_channel(any_engine, roster.guardians["g1"]) is None  # no plan yet
    saved = plan.save(
        any_engine, roster.operators["caaspp"], HALF, roster_facts(any_engine, roster.lea_id)
    )
    expected = {"g1": A, "g2": B, "g3": C, "g4": C, "g5": A, "g6": B, "g7": C}
    for key, option in expected.items():
        assert plan.guardian_channel(any_engine, roster.guardians[key]) is option, key
    by_id = {gid: key for key, gid in roster.guardians.items()}
    with Session(any_engine) as session:
        for option in Option:
            ids = session.exec(select(Guardian.id).where(plan.channel_filter(saved, option))).all()
            assert sorted(by_id[i] for i in ids) == sorted(
                k for k, o in expected.items() if o is option
            ), option
    with pytest.raises(NotFound):
        plan.guardian_channel(any_engine, 999)


def test_each_student_is_on_exactly_one_channel(engine: Engine) -> None:
    roster = advisor_roster.build(engine)
    caaspp = roster.operators["caaspp"]
    plan.save(engine, caaspp, HALF, roster_facts(engine, roster.lea_id))
    with Session(engine) as session:
        ids = {s.ssid[-1]: s.id for s in session.exec(select(Student)).all()}
    channels = {f"s{n}": plan.student_channel(engine, ids[str(n)]) for n in range(1, 10)}
    # s9's family is its primary guardian g7 (print), not g6 (email); s8 has no guardian.
    assert channels == {
        "s1": A, "s2": A, "s3": B, "s4": C, "s5": C, "s6": A, "s7": A, "s8": None, "s9": C,
    }  # fmt: skip
    with pytest.raises(NotFound):
        plan.student_channel(engine, 999)


def test_saving_with_no_roster_records_zero_counts(engine: Engine) -> None:
    roster = advisor_roster.build(engine)
    saved = plan.save(engine, roster.operators["caaspp"], HALF, RosterFacts("Sample Unified"))
    assert (saved.families, saved.ssrs, saved.cost) == (0, 0, 0)
    assert "No plan saved yet" in plan.summary_text(None)
    assert "By caaspp" in plan.summary_text(saved)


def _add_reports(engine: Engine, ssid_ends: str) -> dict[str, int]:
    """A 2026 CAASPP report for each student whose SSID ends in one of ``ssid_ends``; returns
    every student's id by the last digit of their SSID."""
    from services.core.db import session_scope
    from services.core.programs import Program
    from services.intake.score_reports import ScoreReport

    with session_scope(engine) as session:
        ids = {s.ssid[-1]: s.id for s in session.exec(select(Student)).all()}
        for end in ssid_ends:
            session.add(
                ScoreReport(
                    student_id=ids[end],
                    program=Program.CAASPP,
                    admin_year=2026,
                    test="ELA",
                    file_path=f"s{end}-extra.pdf",
                    sha256=f"{int(end) + 50:064d}",
                )
            )
    return {k: int(v) for k, v in ids.items() if v is not None}


def test_a_family_moved_by_the_help_desk_is_on_its_new_channel_everywhere(
    any_engine: Engine,
) -> None:
    """The move overrides the plan in Python and in SQL, for the student, for the plan's email
    batch and for the A/C/D batches (even on a channel the plan does not use)."""
    from services.delivery import batches
    from services.helpdesk import families as helpdesk
    from services.plan import coverage

    roster = advisor_roster.build(any_engine, other_lea=False)
    caaspp = roster.operators["caaspp"]
    saved = plan.save(any_engine, caaspp, HALF, roster_facts(any_engine, roster.lea_id))
    ids = _add_reports(any_engine, "4569")
    g = roster.guardians
    helpdesk.move_channel(any_engine, caaspp, g["g1"], B, "reads email, never the portal")
    helpdesk.move_channel(any_engine, caaspp, g["g2"], C, "asked for paper at the office")
    helpdesk.move_channel(any_engine, caaspp, g["g5"], D, "no portal account after all")
    expected = {"g1": B, "g2": C, "g3": C, "g4": C, "g5": D, "g6": B, "g7": C}
    for key, option in expected.items():
        assert plan.guardian_channel(any_engine, g[key]) is option, key
    by_id = {gid: key for key, gid in g.items()}
    with Session(any_engine) as session:
        for option in Option:
            chosen = session.exec(select(Guardian.id).where(plan.channel_filter(saved, option)))
            assert sorted(by_id[i] for i in chosen) == sorted(
                k for k, o in expected.items() if o is option
            ), option
    students = {n: plan.student_channel(any_engine, ids[n]) for n in "1369"}
    assert students == {"1": B, "3": C, "6": D, "9": C}

    # The plan's email batch: g1's children, not g2 (moved to print), not g6 (s9's second guardian).
    preview = batches.dry_run(any_engine, caaspp, batches.Selection(batches.Source.PLAN))
    assert (preview.families, preview.ssrs) == (1, 4)

    def planned(option: Option) -> set[str]:
        _, query = coverage.choose(any_engine, caaspp, option)
        with Session(any_engine) as session:
            sids = {int(row.sid) for row in session.execute(query)}
        return {n for n, sid in ids.items() if sid in sids}

    assert planned(D) == {"6"}  # the plan has no D, but a person put g5 there
    assert planned(C) == {"4", "5", "9"}
    assert planned(A) == set()  # g1 and g5 both moved away from the portal
