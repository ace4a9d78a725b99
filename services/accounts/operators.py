"""Managing an LEA's operators: add, list, disable, enable, change roles; each change audited.

Disabling takes effect at once: sign-in is refused, and ``serve-ssh`` ends the person's open
sessions within seconds (it re-reads who is active, ``services.access.operators.active_ids``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from services.access.permissions import Permission, require
from services.access.tables import Operator, Role
from services.accounts import keys as stored_keys
from services.accounts import people
from services.accounts.people import OperatorView
from services.audit import log as audit
from services.core.db import session_scope
from services.core.errors import InvalidInput, PermissionDenied


@dataclass(frozen=True)
class NewOperator:
    """What a person is added with; checked by ``add``."""

    username: str
    display_name: str
    roles: tuple[Role | str, ...]
    email: str | None = None
    school: str | None = None  # a site coordinator's school CDS code
    keys: tuple[str, ...] = ()  # public key lines


def list_operators(engine: Engine, actor: Operator) -> list[OperatorView]:
    """Everyone in the actor's LEA, by username."""
    require(actor, Permission.MANAGE_OPERATORS)
    with Session(engine) as session:
        found = session.exec(
            select(Operator).where(Operator.lea_id == actor.lea_id).order_by(col(Operator.username))
        ).all()
        return [people.view(session, operator) for operator in found]


def add(engine: Engine, actor: Operator, new: NewOperator) -> OperatorView:
    """A new operator of the actor's LEA, with their keys, in one transaction."""
    name = people.username(new.username)
    held = people.roles(new.roles)
    people.may_manage(actor, held, "grant the role of")
    try:
        with session_scope(engine) as session:
            if session.exec(select(Operator.id).where(Operator.username == name)).first():
                raise InvalidInput(f"An operator named {name!r} already exists")
            operator = Operator(
                username=name,
                display_name=people.display_name(new.display_name),
                email=people.email(new.email),
                role=held[0],
                second_role=held[1] if len(held) > 1 else None,
                lea_id=actor.lea_id,
                school_id=people.school_for(session, actor.lea_id, held, new.school),
            )
            session.add(operator)
            session.flush()
            who = audit.Actor.of(actor)
            audit.record(session, who, "operator.add", name, _detail(session, operator))
            for key in new.keys:
                stored_keys.attach(session, who, operator, key)
            return people.view(session, operator)
    except IntegrityError:  # the same name or key added by someone else at the same moment
        raise InvalidInput(f"{name!r} or one of its keys was just added by someone else") from None


def set_active(engine: Engine, actor: Operator, username: str, active: bool) -> bool:
    """Disable or enable; False when it already was (nothing changed, nothing audited)."""
    with session_scope(engine) as session:
        operator = people.target(session, actor, username)
        people.may_manage(actor, operator.roles, "disable or enable")
        if operator.id == actor.id:
            raise PermissionDenied("Nobody disables or enables their own account")
        if operator.active == active:
            return False
        operator.active = active
        session.add(operator)
        action = "operator.enable" if active else "operator.disable"
        audit.record(session, audit.Actor.of(actor), action, username)
        return True


def set_roles(
    engine: Engine,
    actor: Operator,
    username: str,
    roles: Sequence[Role | str],
    school: str | None = None,
) -> bool:
    """Change someone else's roles (and school); False when nothing changed."""
    held = people.roles(roles)
    with session_scope(engine) as session:
        operator = people.target(session, actor, username)
        if operator.id == actor.id:
            raise PermissionDenied("Nobody changes their own role; ask another coordinator")
        people.may_manage(actor, operator.roles, "change the role of")
        people.may_manage(actor, held, "grant the role of")
        school_id = people.school_for(session, actor.lea_id, held, school)
        if operator.roles == held and operator.school_id == school_id:
            return False
        before = [role.value for role in operator.roles]
        operator.role, operator.second_role = held[0], held[1] if len(held) > 1 else None
        operator.school_id = school_id
        session.add(operator)
        detail = {"from": before} | _detail(session, operator)
        audit.record(session, audit.Actor.of(actor), "operator.set_role", username, detail)
        return True


def _detail(session: Session, operator: Operator) -> dict[str, object]:
    shown = people.view(session, operator)
    return {"roles": [role.value for role in shown.roles], "school": shown.school}
