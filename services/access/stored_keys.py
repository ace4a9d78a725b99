"""SSH keys kept in the database: which operator a public key signs in as.

Keys are added and removed with ``services.accounts.keys`` (audited); this module only reads, so the
SSH server can look a key up on every connection without a restart or a file to edit.
"""

from __future__ import annotations

import base64

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from services.access.ssh_keys import fingerprint
from services.access.tables import Operator, OperatorKey


def operator_for(engine: Engine, blob: bytes) -> str | None:
    """The username a stored key signs in as (active or not: ``operators.resolve`` decides)."""
    with Session(engine) as session:
        return session.exec(
            select(Operator.username)
            .join(OperatorKey, col(OperatorKey.operator_id) == col(Operator.id))
            .where(
                OperatorKey.fingerprint == fingerprint(blob),
                OperatorKey.public_key == base64.b64encode(blob).decode(),
            )
        ).first()


def count(engine: Engine) -> int:
    """How many keys are stored (the server's start-up line)."""
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(OperatorKey)).one())
