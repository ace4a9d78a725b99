"""Who may manage whom, and the checks every operator's details pass, shared by setup and the
operator commands.

The rules (issue 17): an LEA coordinator manages everyone in their LEA; the technology coordinator
manages help desk accounts and keys but never grants a coordinator role; nobody changes their own
role. One person holds at most two roles (both coordinator roles, in a small district); a site
coordinator holds that role alone, since it is tied to one school.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from services.access.permissions import Permission, require
from services.access.ssh_keys import USERNAME
from services.access.tables import Operator, OperatorKey, Role
from services.core.errors import InvalidInput, NotFound, PermissionDenied
from services.roster.records import EMAIL_SHAPE
from services.roster.tables import School

COORDINATOR_ROLES = frozenset({Role.LEA_CAASPP, Role.LEA_ELPAC})
NAME_LIMIT = 200


@dataclass(frozen=True)
class OperatorView:
    """One operator as the list and the screen show it: plain values, keys by fingerprint."""

    username: str
    display_name: str
    email: str | None
    roles: tuple[Role, ...]
    school: str | None  # the school's CDS code, for a site coordinator
    active: bool
    keys: tuple[str, ...]

    @property
    def roles_label(self) -> str:
        return " and ".join(role.label for role in self.roles)

    def as_json(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "name": self.display_name,
            "email": self.email,
            "roles": [role.value for role in self.roles],
            "school": self.school,
            "active": self.active,
            "keys": list(self.keys),
        }


def view(session: Session, operator: Operator) -> OperatorView:
    keys = session.exec(
        select(OperatorKey.fingerprint)
        .where(OperatorKey.operator_id == operator.id)
        .order_by(col(OperatorKey.id))
    ).all()
    school = session.get(School, operator.school_id) if operator.school_id else None
    return OperatorView(
        operator.username,
        operator.display_name,
        operator.email,
        operator.roles,
        school.cds_code if school else None,
        operator.active,
        tuple(keys),
    )


def username(value: str) -> str:
    text = str(value).strip()
    if not USERNAME.fullmatch(text):
        raise InvalidInput(
            f"{text!r} is not a username: up to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return text


def display_name(value: str) -> str:
    text = " ".join(str(value).split())
    if not text:
        raise InvalidInput("An operator needs a name")
    if len(text) > NAME_LIMIT or not text.isprintable():
        raise InvalidInput(f"A name is printable text of at most {NAME_LIMIT} characters")
    return text


def email(value: str | None) -> str | None:
    text = str(value or "").strip()
    if not text:
        return None
    if not EMAIL_SHAPE.fullmatch(text) or len(text) > 254:
        raise InvalidInput(f"{text!r} is not an email address")
    return text


def roles(values: Iterable[Role | str]) -> tuple[Role, ...]:
    """One or two distinct roles; a site coordinator's role stands alone."""
    found: list[Role] = []
    for value in values:
        try:
            role = Role(value)
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise InvalidInput(f"Unknown role {value!r}; expected one of {known}") from None
        if role not in found:
            found.append(role)
    if not 1 <= len(found) <= 2:
        raise InvalidInput("An operator holds one role, or two (both coordinator roles)")
    if Role.SITE in found and len(found) > 1:
        raise InvalidInput("A site coordinator is tied to one school and holds no other role")
    return tuple(found)


def school_for(
    session: Session, lea_id: int, held: tuple[Role, ...], code: str | None
) -> int | None:
    """The school a site coordinator is held to (required for them, refused for LEA-wide roles)."""
    if Role.SITE not in held:
        if code:
            raise InvalidInput(
                "Only a site coordinator is held to one school; leave the school out"
            )
        return None
    if not code:
        raise InvalidInput("A site coordinator needs their school's 14-digit CDS code")
    school = session.exec(
        select(School).where(School.cds_code == code.strip(), School.lea_id == lea_id)
    ).first()
    if school is None:
        raise NotFound(
            f"No school with CDS code {code.strip()} in this LEA (import the roster first)"
        )
    return school.id


def target(session: Session, actor: Operator, name: str) -> Operator:
    """An operator of the actor's LEA, read in this transaction."""
    found = session.exec(
        select(Operator).where(Operator.username == name, Operator.lea_id == actor.lea_id)
    ).first()
    if found is None:
        raise NotFound(f"No operator named {name!r} in your LEA")
    return found


def is_coordinator(operator: Operator) -> bool:
    return any(role in COORDINATOR_ROLES for role in operator.roles)


def may_manage(actor: Operator, held: Iterable[Role], action: str) -> None:
    """Refuse, with the rule, an account change the actor may not make (roles before or after)."""
    require(actor, Permission.MANAGE_OPERATORS)
    if is_coordinator(actor):
        return
    for role in held:
        if role in COORDINATOR_ROLES:
            raise PermissionDenied(
                f"A technology coordinator may not {action} an {role.label}; ask an LEA coordinator"
            )
        if role is not Role.HELPDESK:
            raise PermissionDenied(
                f"A technology coordinator manages help desk accounts only, not a "
                f"{role.label.lower()}; ask an LEA coordinator"
            )


def may_manage_keys(actor: Operator, owner: Operator) -> None:
    """Keys of anyone but an LEA coordinator for the tech coordinator: a key on a coordinator's
    account would let its holder sign in as that coordinator, i.e. grant themselves the role."""
    require(actor, Permission.MANAGE_OPERATORS)
    if not is_coordinator(actor) and is_coordinator(owner) and owner.id != actor.id:
        raise PermissionDenied(
            "A technology coordinator may not change an LEA coordinator's keys; "
            "ask an LEA coordinator"
        )
