"""What every help desk action checks first: a reason worth keeping, and a family in scope."""

from __future__ import annotations

from sqlmodel import Session, col, select

from services.access.permissions import school_scope
from services.access.tables import Operator
from services.core.errors import InvalidInput, NotFound, PermissionDenied
from services.core.validation import plain_text
from services.roster.tables import Guardian, Student, StudentGuardian

MAX_REASON = 300


def reason_text(reason: str) -> str:
    """The reason as stored: plain text of a few words at least, so the next person knows why."""
    text = plain_text(reason, "the reason")
    if len(text) < 3:
        raise InvalidInput("Give a reason (a few words), so the next person knows why")
    if len(text) > MAX_REASON:
        raise InvalidInput(f"Keep the reason under {MAX_REASON} characters")
    return text


def guardian_in_scope(session: Session, operator: Operator, guardian_id: int) -> Guardian:
    """A guardian the operator may act for; a site coordinator: one with a child at their school."""
    guardian = session.get(Guardian, guardian_id)
    if guardian is None or guardian.lea_id != operator.lea_id:
        raise NotFound("That family is not in your scope")
    own = school_scope(operator)
    if own is not None:
        child = session.exec(
            select(Student.id)
            .join(StudentGuardian, col(StudentGuardian.student_id) == col(Student.id))
            .where(col(StudentGuardian.guardian_id) == guardian_id, col(Student.school_id) == own)
            .limit(1)
        ).first()
        if child is None:
            raise PermissionDenied("This family has no child at your school")
    return guardian
