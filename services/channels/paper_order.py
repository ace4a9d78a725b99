"""Paper SSRs from ETS (option D): an order list by SSID for a class, a school or the LEA.

Seed 000: ordered by Statewide Student Identifier for a class, school or entire district, $1.48
per SSR with the guardian's address printed, arriving from August; DESIGN.md adds $2.00 a set
stuffed in envelopes. Both rates are configurable (``services.plan.advisor.Rates``), and where ETS no
longer offers paper (``Rates.ets_offered`` false) the preview says so plainly and no order is
recorded: print locally (C) instead.

Paper needs no download (seed 000: option D "does not require the ability to download"): an
order takes the students from the roster by SSID, whether or not their PDFs were imported
(``services.plan.coverage.roster_students``); a student with none imported is one line of the
order list and counts as one SSR in the estimate.

An order is recorded as a channel batch (``services.channels.batches``, channel D) so coverage
counts its students from the moment it is placed; it stays running until the operator marks the
paper received. The CSV is streamed from the batch's items, one row per SSR, by SSID.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import and_, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.access.permissions import Permission, require
from services.access.tables import Operator
from services.audit import log as audit
from services.audit.log import Actor
from services.channels import batches as channel_batches
from services.channels.batches import ChannelBatch, ChannelItem, ChannelItemState, Scope
from services.core import csv_export, private_files
from services.core.channels import Option
from services.core.columns import utcnow
from services.core.db import session_scope
from services.core.errors import ConsoleError, InvalidInput
from services.core.scope import report_filters
from services.core.settings import Settings
from services.delivery.ledger import BatchStatus
from services.intake.score_reports import ScoreReport
from services.plan import coverage
from services.plan.advisor import Rates
from services.roster.facts import HAS_ADDRESS
from services.roster.tables import Guardian, School, Student

NOT_OFFERED = (
    "ETS no longer offers paper SSRs for this administration: print them locally (option C) "
    "instead."
)
CSV_FIELDS = (
    "ssid",
    "last_name",
    "first_name",
    "grade",
    "school_cds",
    "school",
    "program",
    "test",
    "admin_year",
    "language",
)


@dataclass(frozen=True)
class OrderFigures:
    """Count and cost of a paper order, with the note shown where ETS offers no paper."""

    families: int
    students: int
    ssrs: int  # imported SSRs, plus one per student with none imported (``estimated``)
    mailed_families: int
    rate: Decimal
    stuffed: bool
    ets_cost: Decimal
    mailing_cost: Decimal
    note: str = ""
    estimated: int = 0  # students with no SSR imported: ETS finds theirs by SSID

    @property
    def cost(self) -> Decimal:
        return self.ets_cost + self.mailing_cost

    @property
    def offered(self) -> bool:
        return not self.note


def _figures(
    engine: Engine, students: Any, lea_id: int, scope: Scope, rates: Rates
) -> OrderFigures:
    """Count families, students and SSRs of ``students`` (``sid``, ``gid``) and price them.

    Paper needs no download: a student whose SSRs were not imported counts as one SSR, the one
    ETS prints for them by SSID."""
    chosen = students.subquery("chosen")
    imported = (
        select(col(ScoreReport.student_id).label("sid"), func.count().label("n"))
        .join(Student, col(Student.id) == col(ScoreReport.student_id))
        .where(
            col(ScoreReport.student_id).in_(select(chosen.c.sid)),
            *report_filters(lea_id, scope.school_id, scope.grade, scope.program, scope.admin_year),
        )
        .group_by(col(ScoreReport.student_id))
        .subquery("imported")
    )
    reports = (
        select(
            func.coalesce(func.sum(imported.c.n), 0),
            func.count().filter(imported.c.n.is_(None)),
        )
        .select_from(chosen)
        .outerjoin(imported, imported.c.sid == chosen.c.sid)
    )
    with Session(engine) as session:
        families, count, mailed = session.execute(
            select(
                func.count(func.distinct(chosen.c.gid)),
                func.count(),
                func.count(func.distinct(chosen.c.gid)).filter(HAS_ADDRESS),
            )
            .select_from(chosen)
            .join(Guardian, col(Guardian.id) == chosen.c.gid)
        ).one()
        counted, estimated = (int(v) for v in session.execute(reports).one())
    ssrs = counted + estimated
    envelope = Decimal(0) if rates.ets_stuffed else rates.envelope
    return OrderFigures(
        families=int(families),
        students=int(count),
        ssrs=ssrs,
        mailed_families=int(mailed),
        rate=rates.ets_rate,
        stuffed=rates.ets_stuffed,
        ets_cost=rates.ets_rate * ssrs,
        mailing_cost=(envelope + rates.postage) * int(mailed),
        note="" if rates.ets_offered else NOT_OFFERED,
        estimated=estimated,
    )


def preview(
    engine: Engine,
    operator: Operator,
    *,
    scope: Scope | None = None,
    who: coverage.Who = coverage.Who.PLAN,
    rates: Rates | None = None,
) -> OrderFigures:
    """What an order for the scope would count and cost (nothing is recorded)."""
    require(operator, Permission.RUN_BATCHES, lea_id=operator.lea_id)
    scope, students = coverage.choose(engine, operator, Option.PAPER, scope, who)
    return _figures(engine, students, operator.lea_id, scope, rates or Rates())


def create(
    engine: Engine,
    operator: Operator,
    *,
    name: str,
    scope: Scope | None = None,
    who: coverage.Who = coverage.Who.PLAN,
    exclude: Iterable[int] = (),
    rates: Rates | None = None,
    only: Iterable[int] | None = None,
) -> ChannelBatch:
    """Record the order as a channel-D batch (its students are then covered)."""
    require(operator, Permission.RUN_BATCHES, lea_id=operator.lea_id)
    rates = rates or Rates()
    if not rates.ets_offered:
        raise InvalidInput(NOT_OFFERED)
    scope, students = coverage.choose(engine, operator, Option.PAPER, scope, who, exclude, only)
    counted = _figures(engine, students, operator.lea_id, scope, rates)
    with session_scope(engine) as session:
        batch = channel_batches.create(
            session,
            operator,
            Option.PAPER,
            name=name,
            source=who.value,
            scope=scope,
            students=students,
            detail={"rate": str(counted.rate), "stuffed": counted.stuffed},
        )
        batch.ssrs = counted.ssrs
        batch.cost_cents = int((counted.cost * 100).to_integral_value())
        session.add(batch)
        return batch


def rows(engine: Engine, operator: Operator, batch_id: int) -> Iterator[tuple[object, ...]]:
    """The order's lines (one per SSR, by SSID), streamed from the batch's items."""
    batch = _order(engine, operator, batch_id)
    statement = (
        sa.select(
            col(Student.ssid),
            col(Student.last_name),
            col(Student.first_name),
            col(Student.grade),
            col(School.cds_code),
            col(School.name),
            col(ScoreReport.program),
            col(ScoreReport.test),
            col(ScoreReport.admin_year),
            col(ScoreReport.language),
        )
        .select_from(ChannelItem)
        .join(Student, col(Student.id) == col(ChannelItem.student_id))
        .join(School, col(School.id) == col(Student.school_id))
        # A student whose SSRs were never imported is one line by SSID: ETS finds their reports.
        .outerjoin(
            ScoreReport,
            and_(
                col(ScoreReport.student_id) == col(Student.id),
                *report_filters(
                    batch.lea_id, batch.school_id, batch.grade, batch.program, batch.admin_year
                ),
            ),
        )
        .where(
            col(ChannelItem.batch_id) == batch_id,
            col(ChannelItem.state) != ChannelItemState.CANCELLED,
        )
        .order_by(Student.ssid, ScoreReport.program, ScoreReport.test, ScoreReport.language)
        .execution_options(yield_per=1000)
    )
    with Session(engine) as session:
        for row in session.execute(statement):
            ssid, last, first, grade, cds, school, program, test, year, language = row
            program = str(program) if program is not None else (batch.program or "")
            year = year if year is not None else (batch.admin_year or "")
            yield (ssid, last, first, grade, cds, school, program, test or "", year, language or "")


def order_csv_path(settings: Settings, batch_id: int) -> Path:
    """Where an order's list is written: ``orders/ets-order-<id>.csv`` in the data folder."""
    return settings.data_dir / "orders" / f"ets-order-{batch_id}.csv"


def export_csv(engine: Engine, operator: Operator, batch_id: int, path: Path) -> int:
    """Write the order list to ``path`` (CSV, UTF-8, header row); returns the number of SSRs."""
    count = 0
    try:
        private_files.make_dirs(path.parent)
        with open(path, "w", newline="", encoding="utf-8", opener=private_files.opener) as handle:
            writer = csv_export.SafeWriter(handle)
            writer.writerow(CSV_FIELDS)
            for row in rows(engine, operator, batch_id):
                writer.writerow(row)
                count += 1
    except OSError as error:
        raise ConsoleError(
            f"Could not write the order list {path} ({error.strerror or error}); the order is "
            "recorded: export it again once the folder is fixed"
        ) from error
    with session_scope(engine) as session:
        batch = session.get(ChannelBatch, batch_id)
        assert batch is not None
        detail = channel_batches.details(batch)
        detail["csv"] = str(path)
        batch.detail = json.dumps(detail, sort_keys=True)
        session.add(batch)
        audit.record(
            session,
            Actor.of(operator),
            "channel_batch.export.D",
            channel_batches.target(batch),
            {"ssrs": count},
            lea_id=batch.lea_id,
        )
    return count


def mark_received(engine: Engine, operator: Operator, batch_id: int) -> None:
    """The paper arrived from ETS: the order's students are received (at the LEA, not yet with
    their families: ``channel_batches.confirm_delivered``) and the order is finished."""
    batch = _order(engine, operator, batch_id)
    if batch.status is not BatchStatus.RUNNING:
        raise InvalidInput(f"Order {batch_id} is {batch.status.value}, not waiting for paper")
    with session_scope(engine) as session:
        session.execute(
            ChannelItem.__table__.update()  # type: ignore[attr-defined]
            .where(
                col(ChannelItem.batch_id) == batch_id,
                col(ChannelItem.state) == ChannelItemState.PENDING,
            )
            .values(state=ChannelItemState.RECEIVED, updated_at=utcnow())
        )
        row = session.get(ChannelBatch, batch_id)
        assert row is not None
        channel_batches.finish(session, row, Actor.of(operator), received=True)


def _order(engine: Engine, operator: Operator, batch_id: int) -> ChannelBatch:
    batch = channel_batches.get(engine, operator, batch_id)
    if batch.channel != Option.PAPER.value:
        raise InvalidInput(f"Batch {batch_id} is not an ETS paper order")
    return batch
