"""Every service derives the scope from the operator, never from its caller.

The first test lists every public service function that runs queries (takes ``engine``) and takes
a scope-like parameter (a scope, a selection, a school, a student group, an import run): each
must also take the operator, and be called below. The second calls each one as a site
coordinator with forged scopes (LEA-wide, another school's, another school's group or run) and
checks that nothing of another school comes back: no SSID, no school name, no ``school_id``, and
no batch item for another school's student. A refusal (a sentence) is fine too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

import services
from services.access import operators
from services.access.tables import Operator
from services.channels import by_scope, paper_order, print_batch
from services.channels.batches import ChannelBatch, ChannelItem
from services.channels.batches import Scope as ChannelScope
from services.core import db
from services.core.channels import Option
from services.core.errors import ConsoleError
from services.core.programs import Program
from services.core.settings import Settings
from services.core.working_days import WorkingCalendar
from services.delivery import batches, notices
from services.delivery.ledger import DeliveryBatch, DeliveryItem
from services.intake import importer
from services.intake import queue as import_queue
from services.intake.records import ImportException, ImportRun, Reason
from services.intake.score_reports import ScoreReport
from services.plan import coverage
from services.plan import decisions as plan
from services.plan.advisor import Answers
from services.reports import aggregates as reports
from services.roster import groups as student_groups
from services.roster.facts import roster_facts
from services.roster.groups import Filter
from services.roster.tables import School, Student

SCOPE_LIKE = {"scope", "selection", "school_id", "group_id", "run_id"}
NOT_A_FILTER = {
    "services.plan.decisions.current": "which school's plan applies to a family already reached",
    "services.plan.decisions.guardian_channel": "the plan of the school a family's child is in",
    "services.roster.facts.roster_facts": "counts for the advisor, which needs CHOOSE_PLAN",
    "services.delivery.sending_time.earliest_deadline": "a date, for a selection already scoped",
}
"""Functions whose ``school_id`` says which school's plan, counts or deadline apply to data the
caller already holds, not whose students to show; they return no student and take no operator."""


def scoped_functions() -> dict[str, inspect.Signature]:
    """Every public function of services/ that queries (``engine``) with a scope-like parameter."""
    found = {}
    for info in pkgutil.walk_packages(services.__path__, "services."):
        if ".migrations" in info.name:
            continue
        module = importlib.import_module(info.name)
        for name, function in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(function):
                continue
            if function.__module__ != module.__name__:
                continue
            signature = inspect.signature(function)
            names = set(signature.parameters)
            typed = {str(p.annotation) for p in signature.parameters.values()}
            if "engine" in names and (
                names & SCOPE_LIKE or any("Scope" in t or "Selection" in t for t in typed)
            ):
                found[f"{module.__name__}.{name}"] = signature
    return found


@dataclass
class World:
    engine: Engine
    settings: Settings
    site: Operator
    caaspp: Operator
    own: School
    other: School
    other_ssids: set[str]
    own_ssids: set[str]
    other_group: int
    other_run: int


@pytest.fixture
def world(sqlite_url: str, tmp_path: Path, seed_demo) -> Iterator[World]:  # type: ignore[no-untyped-def]
    engine = db.make_engine(sqlite_url)
    settings = Settings(sqlite_url, tmp_path)
    seed_demo(engine, settings, students=60, seed=3, pdfs=False)
    caaspp, site = operators.resolve(engine, "caaspp"), operators.resolve(engine, "site")
    received = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)
    with Session(engine, expire_on_commit=False) as session:
        own = session.get(School, site.school_id)
        other = session.exec(select(School).where(col(School.id) != site.school_id)).first()
        assert own is not None and other is not None
        students = session.exec(select(Student)).all()
        for s in students:
            session.add(
                ScoreReport(
                    student_id=s.id,  # type: ignore[arg-type]
                    program=Program.CAASPP,
                    admin_year=2026,
                    test="SB",
                    language="en",
                    file_path=f"/nowhere/{s.ssid}.pdf",
                    sha256=f"{s.id:064d}",
                    received_at=received,
                )
            )
        run = ImportRun(operator="caaspp", lea_id=caaspp.lea_id, status="done")
        session.add(run)
        session.flush()
        assert run.id is not None
        theirs = [s.ssid for s in students if s.school_id == other.id]
        session.add(
            ImportException(
                run_id=run.id, source=f"{theirs[0]}.pdf", reason=Reason.CORRUPT_PDF, ssid=theirs[0]
            )
        )
        session.commit()
        run_id = run.id
    group = student_groups.create_from_filter(
        engine, caaspp, "Elsewhere", "2025-26", Filter(school_id=other.id)
    )
    answers = Answers(has_sis=True, sis_portal=True, third_party_portal=False, portal_share=0.5)
    facts = roster_facts(engine, caaspp.lea_id, other.id)
    plan.save(engine, caaspp, answers, facts, school_id=other.id)
    reports.refresh(engine, caaspp)  # the LEA's figures are there to be leaked
    yield World(
        engine,
        settings,
        site,
        caaspp,
        own,
        other,
        {s.ssid for s in students if s.school_id == other.id},
        {s.ssid for s in students if s.school_id == own.id},
        group.id,
        run_id,
    )
    engine.dispose()


REFUSED = "refused"


def attempt(call: Callable[[], Any]) -> Any:
    """What the call returns, or ``REFUSED`` when it says no with a sentence."""
    try:
        return call()
    except ConsoleError:
        return REFUSED


def channel_scopes(w: World) -> list[ChannelScope]:
    return [ChannelScope(), ChannelScope(school_id=w.other.id)]


def selections(w: World) -> list[batches.Selection]:
    return [
        batches.Selection(),
        batches.Selection(batches.Source.SCHOOL, school_id=w.other.id),
        batches.Selection(batches.Source.GROUP, group_id=w.other_group),
    ]


def school_ids(w: World) -> list[int | None]:
    return [None, w.other.id]


def ssids_of(engine: Engine, query: Any) -> set[str]:
    """The SSIDs of the students a query of ``sid`` rows picks."""
    chosen = query.subquery()
    with Session(engine) as session:
        return set(session.exec(select(Student.ssid).join(chosen, chosen.c.sid == Student.id)))


def students_picked(engine: Engine, conditions: list[Any]) -> set[str]:
    """The SSIDs of the students whose families some Guardian conditions take."""
    from services.roster.tables import Guardian, StudentGuardian

    with Session(engine) as session:
        return set(
            session.exec(
                select(Student.ssid)
                .join(StudentGuardian, col(StudentGuardian.student_id) == col(Student.id))
                .join(Guardian, col(Guardian.id) == col(StudentGuardian.guardian_id))
                .where(*conditions)
            )
        )


TODAY = date(2026, 12, 1)  # every SSR received in June is overdue: the at-risk list is full
SOON = datetime.now(UTC) + timedelta(days=2)

CALLS: dict[str, Callable[[World], list[Any]]] = {
    "services.channels.paper_order.preview": lambda w: [
        attempt(lambda s=s: paper_order.preview(w.engine, w.site, scope=s, who=coverage.Who.ALL))
        for s in channel_scopes(w)
    ],
    "services.channels.paper_order.create": lambda w: [
        attempt(
            lambda s=s: paper_order.create(
                w.engine, w.site, name="forged", scope=s, who=coverage.Who.ALL
            )
        )
        for s in reversed(channel_scopes(w))
    ],
    "services.channels.by_scope.preview": lambda w: [
        attempt(lambda c=c, s=s: by_scope.preview(w.engine, w.settings, w.site, c, s))
        for c in (Option.PRINT, Option.PAPER)
        for s in selections(w)
    ],
    "services.channels.by_scope.create": lambda w: [
        attempt(lambda c=c, s=s: by_scope.create(w.engine, w.settings, w.site, c, s, name="f"))
        for c in (Option.PRINT, Option.PAPER)
        for s in reversed(selections(w))
    ],
    "services.channels.print_batch.preview": lambda w: [
        attempt(lambda s=s: print_batch.preview(w.engine, w.site, scope=s, who=coverage.Who.ALL))
        for s in channel_scopes(w)
    ],
    "services.channels.print_batch.create": lambda w: [
        attempt(
            lambda s=s: print_batch.create(
                w.engine, w.site, name="forged", scope=s, who=coverage.Who.ALL
            )
        )
        for s in reversed(channel_scopes(w))
    ],
    "services.delivery.batches.scoped": lambda w: [
        attempt(lambda s=s: batches.scoped(w.engine, w.site, s)) for s in selections(w)
    ],
    "services.delivery.batches.family_conditions": lambda w: [
        attempt(
            lambda s=s: students_picked(w.engine, batches.family_conditions(w.engine, w.site, s))
        )
        for s in selections(w)
    ],
    "services.delivery.batches.dry_run": lambda w: [
        attempt(lambda s=s: batches.dry_run(w.engine, w.site, s)) for s in selections(w)
    ],
    "services.delivery.batches.dry_run_sending_time": lambda w: [
        attempt(
            lambda s=s: batches.dry_run_sending_time(
                w.engine, w.settings, w.site, s, batches.dry_run(w.engine, w.site, s), False
            )
        )
        for s in selections(w)
    ],
    "services.delivery.batches.create": lambda w: [
        attempt(lambda s=s: batches.create(w.engine, w.site, s, name="forged"))
        for s in reversed(selections(w))
    ],
    "services.delivery.notices.preview": lambda w: [
        attempt(lambda s=s: notices.preview(w.engine, w.settings, w.site, s, SOON))
        for s in selections(w)
    ],
    "services.delivery.notices.create": lambda w: [
        attempt(
            lambda s=s: notices.create(w.engine, w.settings, w.site, s, name="forged", send_at=SOON)
        )
        for s in reversed(selections(w))
    ],
    "services.intake.importer.by_school_grade": lambda w: [
        attempt(lambda: importer.by_school_grade(w.engine, w.site, w.other_run))
    ],
    "services.intake.importer.visible_run": lambda w: [
        attempt(lambda: importer.visible_run(w.engine, w.site, w.other_run))
    ],
    "services.intake.importer.import_paths": lambda w: [
        attempt(
            lambda: importer.import_paths(
                w.engine,
                w.settings,
                [importer.intake_folders(w.settings)[0]],
                w.site,
                run_id=w.other_run,
            )
        )
    ],
    "services.intake.importer.import_from_api": lambda w: [
        attempt(
            lambda: asyncio.run(
                importer.import_from_api(w.engine, w.settings, None, w.site, run_id=w.other_run)  # type: ignore[arg-type]
            )
        )
    ],
    "services.intake.queue.resume": lambda w: [
        attempt(lambda: import_queue.resume(w.engine, w.site, w.other_run))
    ],
    "services.intake.importer.exceptions": lambda w: [
        attempt(lambda: importer.exceptions(w.engine, w.site, w.other_run))
    ],
    "services.plan.coverage.in_force": lambda w: [
        attempt(lambda s=s: coverage.in_force(w.engine, w.site, s)) for s in channel_scopes(w)
    ],
    "services.plan.coverage.summary": lambda w: [
        attempt(lambda s=s: coverage.summary(w.engine, w.site, s)) for s in channel_scopes(w)
    ],
    "services.plan.coverage.choose": lambda w: [
        attempt(
            lambda s=s: ssids_of(
                w.engine, coverage.choose(w.engine, w.site, Option.PRINT, s, coverage.Who.ALL)[1]
            )
        )
        for s in channel_scopes(w)
    ],
    "services.plan.decisions.save": lambda w: [
        attempt(
            lambda s=s: plan.save(
                w.engine,
                w.site,
                Answers(
                    has_sis=False, sis_portal=False, third_party_portal=False, portal_share=0.0
                ),
                roster_facts(w.engine, w.site.lea_id, s),
                school_id=s,
            )
        )
        for s in school_ids(w)
    ],
    "services.plan.decisions.current_for": lambda w: [
        attempt(lambda s=s: plan.current_for(w.engine, w.site, s)) for s in school_ids(w)
    ],
    "services.plan.decisions.history": lambda w: [
        attempt(lambda s=s: plan.history(w.engine, w.site, s)) for s in school_ids(w)
    ],
    "services.reports.aggregates.scope_for": lambda w: [
        attempt(lambda: reports.scope_for(w.engine, w.site, w.other_group))
    ],
    "services.reports.aggregates.refresh": lambda w: [
        attempt(lambda: reports.refresh(w.engine, w.site, w.other_group))
    ],
    "services.reports.aggregates.corrected_count": lambda w: [
        attempt(lambda: reports.corrected_count(w.engine, w.site, w.other_group))
    ],
    "services.reports.aggregates.refreshed_at": lambda w: [
        attempt(lambda: reports.refreshed_at(w.engine, w.site, w.other_group))
    ],
    "services.reports.aggregates.coverage": lambda w: [
        attempt(lambda d=d, g=g: reports.coverage(w.engine, w.site, d, g))
        for d in reports.Dimension
        for g in (None, w.other_group)
    ],
    "services.reports.aggregates.at_risk_count": lambda w: [
        attempt(lambda g=g: reports.at_risk_count(w.engine, w.site, TODAY, WorkingCalendar(), g))
        for g in (None, w.other_group)
    ],
    "services.reports.aggregates.at_risk": lambda w: [
        attempt(lambda g=g: reports.at_risk(w.engine, w.site, TODAY, WorkingCalendar(), g))
        for g in (None, w.other_group)
    ],
    "services.roster.groups.get": lambda w: [
        attempt(lambda: student_groups.get(w.engine, w.site, w.other_group))
    ],
    "services.roster.groups.guardian_ids": lambda w: [
        attempt(lambda: student_groups.guardian_ids(w.engine, w.site, w.other_group))
    ],
    "services.roster.groups.delete_group": lambda w: [
        attempt(lambda: student_groups.delete_group(w.engine, w.site, w.other_group))
    ],
}


def test_every_function_taking_a_scope_takes_the_operator_and_is_tried_here() -> None:
    found = scoped_functions()
    without = {name for name, sig in found.items() if "operator" not in sig.parameters}
    assert without == set(NOT_A_FILTER), (
        "a service taking a scope must take the operator and derive the scope from it"
    )
    assert set(found) - without == set(CALLS), "list a new scoped service in CALLS"


def leaks(value: Any, w: World, seen: set[int] | None = None) -> Iterator[str]:
    """What of another school a result holds: its SSIDs, its name, its ``school_id``."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, str):
        if value in w.other_ssids or w.other.name in value:
            yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from leaks(key, w, seen)
            yield from leaks(item, w, seen)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from leaks(item, w, seen)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        if getattr(value, "school_id", None) == w.other.id:
            yield f"{type(value).__name__} of school {w.other.id}"
        for item in dataclasses.fields(value):
            yield from leaks(getattr(value, item.name), w, seen)
    elif isinstance(value, ChannelBatch) and value.school_id == w.other.id:
        yield f"channel batch {value.id} of school {w.other.id}"


def batch_items_elsewhere(w: World) -> list[str]:
    """Items of batches the site coordinator made for students or families of another school."""
    with Session(w.engine) as session:
        channel = session.exec(
            select(Student.ssid)
            .join(ChannelItem, col(ChannelItem.student_id) == col(Student.id))
            .join(ChannelBatch, col(ChannelBatch.id) == col(ChannelItem.batch_id))
            .where(col(ChannelBatch.created_by) == w.site.username)
            .where(col(Student.school_id) != w.own.id)
        ).all()
        secure = session.exec(
            select(DeliveryItem.id)
            .join(DeliveryBatch, col(DeliveryBatch.id) == col(DeliveryItem.batch_id))
            .where(col(DeliveryBatch.created_by) == w.site.username)
            .where(col(DeliveryItem.school_id) != w.own.id)
        ).all()
    return [*channel, *(f"delivery item {i}" for i in secure)]


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_site_coordinator_with_a_forged_scope_sees_only_their_school(
    world: World, name: str
) -> None:
    results = CALLS[name](world)
    assert results, name
    assert not list(leaks(results, world)), name
    assert not batch_items_elsewhere(world), name
    if name == "services.reports.aggregates.at_risk":
        listed = {r.ssid for r in results[0]}
        assert listed and listed <= world.own_ssids  # the check above looked at real rows
