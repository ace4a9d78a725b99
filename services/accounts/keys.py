"""Adding and removing an operator's SSH public keys, the keys ``serve-ssh`` accepts.

A key is checked (known type, well-formed data) and may name one operator only: the same key on
two accounts would make the sign-in ambiguous. Only fingerprints reach the audit log.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from services.access.ssh_keys import parse_public_key
from services.access.tables import Operator, OperatorKey
from services.accounts import people
from services.audit import log as audit
from services.core.db import session_scope
from services.core.errors import InvalidInput, NotFound

COMMENT_LIMIT = 200


def attach(session: Session, actor: audit.Actor, owner: Operator, text: str) -> str:
    """Store one key for ``owner`` within the caller's transaction; its fingerprint."""
    key = parse_public_key(text)
    existing = session.exec(
        select(Operator.username)
        .join(OperatorKey)
        .where(OperatorKey.fingerprint == key.fingerprint)
    ).first()
    if existing is not None:
        whose = "this operator" if existing == owner.username else f"operator {existing}"
        raise InvalidInput(f"The key {key.fingerprint} already signs in as {whose}")
    session.add(
        OperatorKey(
            operator_id=owner.id,  # type: ignore[arg-type]
            key_type=key.key_type,
            public_key=key.encoded,
            fingerprint=key.fingerprint,
            comment=key.comment[:COMMENT_LIMIT],
        )
    )
    audit.record(session, actor, "operator.key_add", owner.username, {"key": key.fingerprint})
    return key.fingerprint


def add_key(engine: Engine, actor: Operator, username: str, text: str) -> str:
    """Let ``username`` sign in with this public key; its fingerprint."""
    try:
        with session_scope(engine) as session:
            owner = people.target(session, actor, username)
            people.may_manage_keys(actor, owner)
            return attach(session, audit.Actor.of(actor), owner, text)
    except IntegrityError:  # the same key added elsewhere at the same moment
        raise InvalidInput("That key was just added to another operator") from None


def remove_key(engine: Engine, actor: Operator, username: str, key: str) -> str:
    """Stop a key signing in; ``key`` is its ``SHA256:`` fingerprint or the public key itself."""
    wanted = key.strip() if key.strip().startswith("SHA256:") else parse_public_key(key).fingerprint
    with session_scope(engine) as session:
        owner = people.target(session, actor, username)
        people.may_manage_keys(actor, owner)
        stored = session.exec(
            select(OperatorKey).where(
                OperatorKey.operator_id == owner.id, OperatorKey.fingerprint == wanted
            )
        ).first()
        if stored is None:
            raise NotFound(f"{username} has no key {wanted}")
        session.delete(stored)
        audit.record(
            session, audit.Actor.of(actor), "operator.key_remove", username, {"key": wanted}
        )
        return wanted
