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

Every household of the student that may receive the reports (``services.roster.facts.recipient``)
is owed them: a report is delivered when each household has it, by any channel, and taken
(``report_taken``) for one household when a batch holds it for that household. A household is
known by the guardian who represents it, and the items name them: a secure-email item carries a
student when it is for one of the student's recipients, neither the item nor its batch is
cancelled, and the batch's school and grade (if set) are the student's; a portal (A) or print (C)
item is its guardian's household's, one per household (each gets its own envelope, each portal
account sees its own publication). An ETS paper item (D) is the student's, for every household:
ETS sells paper SSRs per student, "per set", "printed and shipped to the LEA", to be "distributed
to parents/guardians using a distribution method determined locally" (caaspp.org, Student Score
Report option D), so one set is ordered per student and its mailing serves every household.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select, true
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from services.channels.batches import COVERING, ChannelBatch, ChannelItem, ChannelItemState
from services.core.channels import Option
from services.delivery.ledger import (
    GAVE_UP,
    BatchKind,
    BatchStatus,
    DeliveryBatch,
    DeliveryItem,
    ItemState,
)
from services.intake.score_reports import ScoreReport
from services.roster.facts import recipient
from services.roster.tables import Student, StudentGuardian

SECURE_DELIVERED = (ItemState.PASSWORD_SENT, ItemState.DONE)
"""Secure-email item states in which the family has the document and its password."""
CHANNEL_DELIVERED = (ChannelItemState.DONE,)
"""Portal, print and paper item states in which the family has (or is handed) the SSRs."""


def secure_item_carries(
    student_id: Any, school_id: Any, grade: Any, guardian_id: Any = None
) -> list[Any]:
    """Conditions on DeliveryItem, DeliveryBatch and StudentGuardian: the item carries the SSRs
    of student ``student_id`` (of ``school_id``, ``grade``), whatever its progress; ``guardian_id``:
    to that household. A notice batch (``services.delivery.notices``) carries no SSR: telling a
    family is not delivering."""
    return [
        col(StudentGuardian.student_id) == student_id,
        col(DeliveryItem.guardian_id) == col(StudentGuardian.guardian_id),
        *([col(StudentGuardian.guardian_id) == guardian_id] if guardian_id is not None else []),
        col(DeliveryBatch.id) == col(DeliveryItem.batch_id),
        col(DeliveryBatch.kind) == BatchKind.DELIVERY,
        col(DeliveryBatch.status) != BatchStatus.CANCELLED,
        col(DeliveryItem.state) != ItemState.CANCELLED,
        or_(col(DeliveryBatch.school_id).is_(None), col(DeliveryBatch.school_id) == school_id),
        or_(col(DeliveryBatch.grade).is_(None), col(DeliveryBatch.grade) == grade),
        recipient(),
    ]


def _for_report(program: Any, admin_year: Any) -> list[Any]:
    """A batch's program and year filters let the report through."""
    return [
        or_(program.is_(None), program == col(ScoreReport.program)),
        or_(admin_year.is_(None), admin_year == col(ScoreReport.admin_year)),
    ]


def channel_item_reaches(guardian_id: Any) -> ColumnElement[bool]:
    """SQL on ChannelItem, ChannelBatch: the item reaches the household of ``guardian_id`` (None:
    any household); an ETS paper item reaches them all (coverage counts channels so too)."""
    if guardian_id is None:
        return true()
    return or_(
        col(ChannelItem.guardian_id) == guardian_id, col(ChannelBatch.channel) == Option.PAPER.value
    )


def _every_household(has: Callable[[Any], ColumnElement[bool]]) -> ColumnElement[bool]:
    """SQL, correlated on Student: the student has a household, and each has ``has`` (a condition
    on one household's guardian id)."""
    link = aliased(StudentGuardian)
    return and_(
        exists().where(col(link.student_id) == col(Student.id), recipient(link)),
        ~exists().where(
            col(link.student_id) == col(Student.id), recipient(link), ~has(link.guardian_id)
        ),
    )


def delivered_by_email(guardian_id: Any = None) -> ColumnElement[bool]:
    """SQL, correlated on ScoreReport joined to its Student: a version of the report reached a
    household by secure email (B); ``guardian_id``: that household."""
    # correlate_except: any guardian's item counts, not only an outer query's guardian's
    return (
        exists()
        .where(
            *secure_item_carries(
                col(Student.id), col(Student.school_id), col(Student.grade), guardian_id
            ),
            col(DeliveryItem.state).in_(SECURE_DELIVERED),
            *_for_report(col(DeliveryBatch.program), col(DeliveryBatch.admin_year)),
        )
        .correlate_except(StudentGuardian)
    )


def delivered_on(channel: str | None = None, guardian_id: Any = None) -> ColumnElement[bool]:
    """SQL, correlated on ScoreReport: a version of the report reached a household by portal,
    print or ETS paper (``channel``: that one, "A", "C" or "D"; None: any of them);
    ``guardian_id``: the household of that guardian."""
    # correlate_except: the report is the outermost query's, also under ``_every_household``
    return (
        exists()
        .where(
            col(ChannelItem.student_id) == col(ScoreReport.student_id),
            col(ChannelItem.state).in_(CHANNEL_DELIVERED),
            col(ChannelBatch.id) == col(ChannelItem.batch_id),
            col(ChannelBatch.status) != BatchStatus.CANCELLED,
            channel_item_reaches(guardian_id),
            *([col(ChannelBatch.channel) == channel] if channel is not None else []),
            *_for_report(col(ChannelBatch.program), col(ChannelBatch.admin_year)),
        )
        .correlate_except(ChannelItem, ChannelBatch)
    )


def _household_has(guardian_id: Any) -> ColumnElement[bool]:
    return or_(delivered_by_email(guardian_id), delivered_on(None, guardian_id))


def report_delivered(guardian_id: Any = None) -> ColumnElement[bool]:
    """SQL, correlated on ScoreReport joined to its Student: the report is with every household
    of the student (``guardian_id``: with that one), or ETS paper was handed out for it."""
    if guardian_id is not None:
        return _household_has(guardian_id)
    return or_(delivered_on(Option.PAPER.value), _every_household(_household_has))


@cache
def report_undelivered() -> ColumnElement[bool]:
    """SQL, correlated like ``report_delivered``: its negation, spelled as two conditions ANDed
    (no ETS paper handed out, and some household without it) so that PostgreSQL can run the
    first as an anti-join instead of probing the paper items once per SSR. Built once: it takes
    no arguments, and building its household subqueries cost the reminder scan 11-14 ms of CPU
    each time (of 30 ms for 50 LEAs)."""
    return and_(~delivered_on(Option.PAPER.value), ~_every_household(_household_has))


def corrects_email_delivery(guardian_id: Any = None) -> ColumnElement[bool]:
    """SQL, correlated like ``report_delivered``: a corrected version of a report that reached a
    household (``guardian_id``: that one) by secure email, so the correction goes to them on that
    channel (``corrections``)."""
    return and_(col(ScoreReport.version) > 1, delivered_by_email(guardian_id))


def correction_owed(lea_id: int, guardian_id: Any = None) -> ColumnElement[bool]:
    """SQL, correlated on ScoreReport (the newest version, ``services.core.scope``) joined to its
    Student: ETS re-issued a report a household already has (a corrected score), and the
    corrected version has not reached them: "corrected, not yet sent" wherever it is shown.
    ``guardian_id``: that household; None: any household of the student."""

    def owed(household: Any) -> ColumnElement[bool]:
        return and_(
            _household_has(household), ~report_taken(lea_id, delivered=True, guardian_id=household)
        )

    if guardian_id is not None:
        return and_(col(ScoreReport.version) > 1, owed(guardian_id))
    link = aliased(StudentGuardian)
    return and_(
        col(ScoreReport.version) > 1,
        exists().where(
            col(link.student_id) == col(Student.id), recipient(link), owed(link.guardian_id)
        ),
    )


def report_taken(
    lea_id: int,
    *,
    delivered: bool = False,
    before: DeliveryBatch | None = None,
    guardian_id: Any = None,
) -> ColumnElement[bool]:
    """SQL, correlated on ScoreReport joined to its Student: this version of the report is
    already with the household of ``guardian_id`` (``delivered``: handed over), or on its way to
    it in a live batch of any channel, so a new batch must not take it again for them (a second
    document and a second password). None: with every household of the student (or ETS paper).

    A batch holds the versions received before it was made; a corrected SSR received later is
    new. ``before``: only batches made before that one count (a batch packaging its families
    leaves out what earlier batches took, never what later ones, which already left it out).
    """
    if guardian_id is None:
        return or_(
            _taken_on_channel(lea_id, delivered, before, None, paper_only=True),
            _every_household(
                lambda household: report_taken(
                    lea_id, delivered=delivered, before=before, guardian_id=household
                )
            ),
        )
    # NOT IN and != keep SQLite (no statistics) from driving the search from the state or LEA
    # indexes, through every item of every batch, instead of from the student's guardians' items
    # (7.6 s instead of 0.1 s for a 5,000-student dry run after one batch). A guardian's items
    # are all of the guardian's LEA.
    not_delivered = [s for s in ItemState if s not in SECURE_DELIVERED]
    by_email = (
        exists()
        .where(
            *secure_item_carries(
                col(Student.id), col(Student.school_id), col(Student.grade), guardian_id
            ),
            col(DeliveryItem.state).not_in(not_delivered)
            if delivered
            else col(DeliveryItem.state).not_in(GAVE_UP),
            col(DeliveryBatch.created_at) >= col(ScoreReport.received_at),
            *_for_report(col(DeliveryBatch.program), col(DeliveryBatch.admin_year)),
            *([col(DeliveryBatch.id) < before.id] if before is not None else []),
        )
        .correlate_except(StudentGuardian)
    )
    return or_(by_email, _taken_on_channel(lea_id, delivered, before, guardian_id))


def _taken_on_channel(
    lea_id: int,
    delivered: bool,
    before: DeliveryBatch | None,
    guardian_id: Any,
    *,
    paper_only: bool = False,
) -> ColumnElement[bool]:
    """``report_taken`` on the portal, print and ETS paper channels (``paper_only``: ETS paper,
    which serves every household of the student)."""
    return (
        exists()
        .where(
            col(ChannelItem.student_id) == col(ScoreReport.student_id),
            col(ChannelItem.state).in_(CHANNEL_DELIVERED if delivered else COVERING),
            col(ChannelBatch.id) == col(ChannelItem.batch_id),
            col(ChannelBatch.lea_id) == lea_id,
            col(ChannelBatch.status) != BatchStatus.CANCELLED,
            col(ChannelBatch.created_at) >= col(ScoreReport.received_at),
            channel_item_reaches(guardian_id),
            *([col(ChannelBatch.channel) == Option.PAPER.value] if paper_only else []),
            *_for_report(col(ChannelBatch.program), col(ChannelBatch.admin_year)),
            *([col(ChannelBatch.created_at) <= before.created_at] if before is not None else []),
        )
        .correlate_except(ChannelItem, ChannelBatch)
    )


def owed_corrections(lea_id: int, conditions: list[Any]) -> Select[int]:
    """SQL: how many students, of those ``conditions`` on Student and ScoreReport choose (with
    ``services.core.scope.report_filters``: the newest versions), are owed a corrected SSR."""
    return (
        select(func.count(func.distinct(col(Student.id))))
        .select_from(ScoreReport)
        .join(Student, col(Student.id) == col(ScoreReport.student_id))
        .where(*conditions, correction_owed(lea_id))
    )
