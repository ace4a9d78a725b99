"""When a student's SSR is with the family, and which secure-email delivery carries it.

One definition, used by coverage, the coordinator reports and the reminder scheduler's deadline
notices, so they cannot disagree about who still waits for their scores.

A report is *delivered* when:

- B (secure email): a delivery item that carries the student (``secure_item_carries``) has had
  both messages accepted by the mail server (``password_sent`` or ``done``), in a batch whose
  program and administration year (if set) are the report's;
- A (``services.channels.batches``): the student's item is ``done``: published to the SIS parent
  portal;
- C (print locally): printed is not delivered; the item is ``done`` once an operator confirms
  the day the envelopes were mailed or handed out at school (``confirm_delivered``);
- D (paper from ETS): ordered (``pending``), then received at the LEA (``received``), then
  ``done`` once an operator confirms the day it was mailed or handed out.

``printed``/``received`` are at the LEA, ``pending`` on the way, ``no_address``/``failed``/
``cancelled`` never delivered. A secure-email item whose message bounced (``bounced``, read from the
bounce mailbox by ``services.bounces``) is not delivered either, and its clock runs again. The deadline clock stops on the day of delivery: the password
accepted (B), ``ChannelItem.delivered_on`` (A, C, D).

A corrected SSR (a later version ETS re-issued) of a report the family already has is owed to them
until that version is delivered too (``correction_owed``); the ``corrections`` batch scope sends it
on the channel the family had the earlier one by (``corrects_email_delivery``, ``delivered_on``).

A secure-email item carries a student when it is for one of the student's guardians, neither the
item nor its batch is cancelled, and the batch's school and grade (if set) are the student's. A
batch made from the plan carries only the students whose family (``roster_facts``) it is for, as
it was made per family: a second guardian's item does not put the child on a second channel.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from services.channels.batches import COVERING, ChannelBatch, ChannelItem, ChannelItemState
from services.core.scope import Source
from services.delivery.ledger import (
    GAVE_UP,
    BatchKind,
    BatchStatus,
    DeliveryBatch,
    DeliveryItem,
    ItemState,
)
from services.intake.score_reports import ScoreReport
from services.roster.facts import family_guardian
from services.roster.tables import Student, StudentGuardian

SECURE_DELIVERED = (ItemState.PASSWORD_SENT, ItemState.DONE)
"""Secure-email item states in which the family has the document and its password."""
CHANNEL_DELIVERED = (ChannelItemState.DONE,)
"""Portal, print and paper item states in which the family has (or is handed) the SSRs."""


def secure_item_carries(student_id: Any, school_id: Any, grade: Any) -> list[Any]:
    """Conditions on DeliveryItem, DeliveryBatch and StudentGuardian: the item carries the SSRs
    of student ``student_id`` (of ``school_id``, ``grade``), whatever its progress. A notice
    batch (``services.delivery.notices``) carries no SSR: telling a family is not delivering."""
    return [
        col(StudentGuardian.student_id) == student_id,
        col(DeliveryItem.guardian_id) == col(StudentGuardian.guardian_id),
        col(DeliveryBatch.id) == col(DeliveryItem.batch_id),
        col(DeliveryBatch.kind) == BatchKind.DELIVERY,
        col(DeliveryBatch.status) != BatchStatus.CANCELLED,
        col(DeliveryItem.state) != ItemState.CANCELLED,
        or_(col(DeliveryBatch.school_id).is_(None), col(DeliveryBatch.school_id) == school_id),
        or_(col(DeliveryBatch.grade).is_(None), col(DeliveryBatch.grade) == grade),
        or_(
            col(DeliveryBatch.source) != Source.PLAN.value,
            col(DeliveryItem.guardian_id) == family_guardian(student_id),
        ),
    ]


def _for_report(program: Any, admin_year: Any) -> list[Any]:
    """A batch's program and year filters let the report through."""
    return [
        or_(program.is_(None), program == col(ScoreReport.program)),
        or_(admin_year.is_(None), admin_year == col(ScoreReport.admin_year)),
    ]


def delivered_by_email() -> ColumnElement[bool]:
    """SQL, correlated on ScoreReport joined to its Student: a version of the report reached the
    family by secure email (B)."""
    # correlate_except: any guardian's item counts, not only an outer query's guardian's
    return (
        exists()
        .where(
            *secure_item_carries(col(Student.id), col(Student.school_id), col(Student.grade)),
            col(DeliveryItem.state).in_(SECURE_DELIVERED),
            *_for_report(col(DeliveryBatch.program), col(DeliveryBatch.admin_year)),
        )
        .correlate_except(StudentGuardian)
    )


def delivered_on(channel: str | None = None) -> ColumnElement[bool]:
    """SQL, correlated on ScoreReport: a version of the report reached the family by portal,
    print or ETS paper (``channel``: that one, "A", "C" or "D"; None: any of them)."""
    return exists().where(
        col(ChannelItem.student_id) == col(ScoreReport.student_id),
        col(ChannelItem.state).in_(CHANNEL_DELIVERED),
        col(ChannelBatch.id) == col(ChannelItem.batch_id),
        col(ChannelBatch.status) != BatchStatus.CANCELLED,
        *([col(ChannelBatch.channel) == channel] if channel is not None else []),
        *_for_report(col(ChannelBatch.program), col(ChannelBatch.admin_year)),
    )


def report_delivered() -> ColumnElement[bool]:
    """SQL, correlated on ScoreReport joined to its Student: the report is with the family."""
    return or_(delivered_by_email(), delivered_on())


def corrects_email_delivery() -> ColumnElement[bool]:
    """SQL, correlated like ``report_delivered``: a corrected version of a report that reached the
    family by secure email, so the correction goes to them on that channel (``corrections``)."""
    return and_(col(ScoreReport.version) > 1, delivered_by_email())


def correction_owed(lea_id: int) -> ColumnElement[bool]:
    """SQL, correlated on ScoreReport (the newest version, ``services.core.scope``) joined to its
    Student: ETS re-issued a report the family already has (a corrected score), and the
    corrected version has not reached them: "corrected, not yet sent" wherever it is shown."""
    return and_(
        col(ScoreReport.version) > 1,
        report_delivered(),
        ~report_taken(lea_id, delivered=True),
    )


def report_taken(
    lea_id: int, *, delivered: bool = False, before: DeliveryBatch | None = None
) -> ColumnElement[bool]:
    """SQL, correlated on ScoreReport joined to its Student: this version of the report is
    already with the family (``delivered``: handed over), or on its way in a live batch of any
    channel, so a new batch must not take it again (a second document and a second password).

    A batch holds the versions received before it was made; a corrected SSR received later is
    new. ``before``: only batches made before that one count (a batch packaging its families
    leaves out what earlier batches took, never what later ones, which already left it out).
    """
    # NOT IN and != keep SQLite (no statistics) from driving the search from the state or LEA
    # indexes, through every item of every batch, instead of from the student's guardians' items
    # (7.6 s instead of 0.1 s for a 5,000-student dry run after one batch). A guardian's items
    # are all of the guardian's LEA.
    not_delivered = [s for s in ItemState if s not in SECURE_DELIVERED]
    # correlate_except: any guardian's item counts, not only the outer query's guardian's
    by_email = (
        exists()
        .where(
            *secure_item_carries(col(Student.id), col(Student.school_id), col(Student.grade)),
            col(DeliveryItem.state).not_in(not_delivered)
            if delivered
            else col(DeliveryItem.state).not_in(GAVE_UP),
            col(DeliveryBatch.created_at) >= col(ScoreReport.received_at),
            *_for_report(col(DeliveryBatch.program), col(DeliveryBatch.admin_year)),
            *([col(DeliveryBatch.id) < before.id] if before is not None else []),
        )
        .correlate_except(StudentGuardian)
    )
    by_channel = exists().where(
        col(ChannelItem.student_id) == col(ScoreReport.student_id),
        col(ChannelItem.state).in_(CHANNEL_DELIVERED if delivered else COVERING),
        col(ChannelBatch.id) == col(ChannelItem.batch_id),
        col(ChannelBatch.lea_id) == lea_id,
        col(ChannelBatch.status) != BatchStatus.CANCELLED,
        col(ChannelBatch.created_at) >= col(ScoreReport.received_at),
        *_for_report(col(ChannelBatch.program), col(ChannelBatch.admin_year)),
        *([col(ChannelBatch.created_at) <= before.created_at] if before is not None else []),
    )
    return or_(by_email, by_channel)


def owed_corrections(lea_id: int, conditions: list[Any]) -> Select[int]:
    """SQL: how many students, of those ``conditions`` on Student and ScoreReport choose (with
    ``services.core.scope.report_filters``: the newest versions), are owed a corrected SSR."""
    return (
        select(func.count(func.distinct(col(Student.id))))
        .select_from(ScoreReport)
        .join(Student, col(Student.id) == col(ScoreReport.student_id))
        .where(*conditions, correction_owed(lea_id))
    )
