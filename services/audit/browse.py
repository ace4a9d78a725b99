"""The audit log as the console pages it: newest first, narrowed by the filter line (``services.audit.filter``)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from services.access.permissions import Permission, require
from services.access.tables import Operator
from services.audit import filter as audit_filter
from services.audit.tables import AuditEvent
from services.core.paging import Page, count_rows


def audit_columns() -> tuple[str, ...]:
    return ("#", "When (UTC)", "Operator", "Action", "Target")


def audit_page(
    engine: Engine, operator: Operator, offset: int, limit: int, filter_text: str = ""
) -> Page:
    """The LEA's audit events (and the console's own, LEA-less ones), newest first.

    The filter (``services.audit.filter``) narrows by operator, action, target and time; a plain
    word matches the start of the operator name, the action or the target.
    """
    require(operator, Permission.VIEW_AUDIT)
    lea = col(AuditEvent.lea_id)
    conditions: list[ColumnElement[bool]] = [or_(lea == operator.lea_id, lea.is_(None))]
    text = filter_text.strip()
    conditions += audit_filter.conditions(text)
    with Session(engine) as session:
        found = session.execute(
            select(
                col(AuditEvent.seq),
                col(AuditEvent.at),
                col(AuditEvent.operator),
                col(AuditEvent.action),
                col(AuditEvent.target),
            )
            .where(*conditions)
            .order_by(col(AuditEvent.seq).desc())
            .offset(max(offset, 0))
            .limit(limit)
        ).all()
        matching = select(col(AuditEvent.id)).where(*conditions)
        total, capped = count_rows(session, matching, exact=not text)
    rows: list[tuple[str, ...]] = [
        (str(seq), at.strftime("%Y-%m-%d %H:%M"), name, action, target)
        for seq, at, name, action, target in found
    ]
    return Page(rows, total, capped)
