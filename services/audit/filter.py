"""The audit screen's filter: by operator, action, target and time, typed on one line.

``op:helpdesk action:delivery.resend target:delivery_item:42 since:2026-11-01 until:2026-11-25T18:00``
Each ``key:value`` narrows the events (operator, action and target by the start of the value;
times in UTC, a date alone meaning its midnight); several are combined with AND. A word without
a known key matches the start of the operator, the action or the target, as before. Every part
is an index range, so filtering stays fast on a long log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, or_
from sqlmodel import col

from services.audit.tables import AuditEvent
from services.core.errors import InvalidInput
from services.core.paging import prefix

KEYS = {
    "op": "operator",
    "operator": "operator",
    "action": "action",
    "target": "target",
    "since": "since",
    "until": "until",
}


def moment(text: str) -> datetime:
    """A UTC moment typed as 2026-11-25 or 2026-11-25T14:30."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{text!r} is not a time; write 2026-11-25 or 2026-11-25T14:30 (UTC)"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def conditions(text: str) -> list[ColumnElement[bool]]:
    """WHERE conditions on AuditEvent for a filter line; an empty line gives none."""

    found: list[ColumnElement[bool]] = []
    columns: dict[str, Any] = {
        "operator": AuditEvent.operator,
        "action": AuditEvent.action,
        "target": AuditEvent.target,
    }
    for token in text.split():
        key, sep, value = token.partition(":")
        field = KEYS.get(key.lower()) if sep else None
        if field is None:
            found.append(or_(*(prefix(c, token) for c in columns.values())))
        elif not value:
            raise InvalidInput(f"Give a value after {key}:, e.g. {key}:{_EXAMPLES[field]}")
        elif field == "since":
            found.append(col(AuditEvent.at) >= moment(value))
        elif field == "until":
            found.append(col(AuditEvent.at) < moment(value))
        else:
            found.append(prefix(columns[field], value))
    return found


_EXAMPLES = {
    "operator": "helpdesk",
    "action": "delivery.resend",
    "target": "delivery_item:42",
    "since": "2026-11-01",
    "until": "2026-11-25T18:00",
}
