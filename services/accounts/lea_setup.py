"""Setting up a real LEA: the LEA itself and its first coordinators, safe to run again.

This is how a district starts (before it, nobody can sign in to grant anything), so it acts as the
system, not as an operator. Running it again with the same values changes nothing; a CDS code that
another LEA already holds, or a coordinator already set up otherwise, is refused with a sentence.
Several LEAs may share one database (a county office hosting its districts): each runs setup.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from services.access.tables import Operator, Role
from services.accounts import people
from services.audit import log as audit
from services.core import validation
from services.core.db import session_scope
from services.core.errors import InvalidInput
from services.roster import records as roster
from services.roster.tables import LEA

SETUP_ACTOR = audit.Actor("setup", audit.SYSTEM)


@dataclass(frozen=True)
class Person:
    """A coordinator as setup is given them."""

    username: str
    display_name: str
    email: str | None = None


@dataclass
class SetupResult:
    """What setup did, one sentence per line; ``changed`` is False when it was all there already."""

    lines: list[str] = field(default_factory=list)
    changed: bool = False

    def __str__(self) -> str:
        return "\n".join(self.lines)


def setup(
    engine: Engine, cds_code: str, name: str, county: str, caaspp: Person, elpac: Person
) -> SetupResult:
    """The LEA and its LEA CAASPP and LEA ELPAC coordinators (one person may be both)."""
    code = validation.lea_cds(cds_code)
    name = people.display_name(name)
    county = " ".join(str(county).split())
    coordinators = _coordinators(caaspp, elpac)
    result = SetupResult()
    try:
        with session_scope(engine) as session:
            lea = _lea(session, code, name, county, result)
            for person, held in coordinators:
                _coordinator(session, lea, person, held, result)
    except IntegrityError:  # another setup of the same LEA or person at the same moment
        raise InvalidInput(
            f"LEA {code} was being set up by someone else; run setup again"
        ) from None
    return result


def _coordinators(caaspp: Person, elpac: Person) -> list[tuple[Person, tuple[Role, ...]]]:
    if people.username(caaspp.username) != people.username(elpac.username):
        return [(caaspp, (Role.LEA_CAASPP,)), (elpac, (Role.LEA_ELPAC,))]
    if (people.display_name(caaspp.display_name), people.email(caaspp.email)) != (
        people.display_name(elpac.display_name),
        people.email(elpac.email),
    ):
        raise InvalidInput(
            f"{caaspp.username} is named as both coordinators with different names or emails"
        )
    return [(caaspp, (Role.LEA_CAASPP, Role.LEA_ELPAC))]


def _lea(session: Session, code: str, name: str, county: str, result: SetupResult) -> LEA:
    lea = session.exec(select(LEA).where(LEA.cds_code == code)).first()
    if lea is None:
        lea = roster.create_lea(session, code, name, county)
        audit.record(
            session, SETUP_ACTOR, "lea.setup", code, {"name": name, "county": county}, lea_id=lea.id
        )
        result.lines.append(f"LEA {code} {name} ({county or 'no county given'}) created")
        result.changed = True
        return lea
    if lea.name != name:
        raise InvalidInput(
            f"CDS code {code} is already used by {lea.name!r}; check the code, or use that "
            "LEA's exact name to run setup again"
        )
    if lea.county != county:
        raise InvalidInput(f"LEA {code} is already set up in county {lea.county!r}, not {county!r}")
    result.lines.append(f"LEA {code} {name} already set up, unchanged")
    return lea


def _coordinator(
    session: Session, lea: LEA, person: Person, held: tuple[Role, ...], result: SetupResult
) -> None:
    username = people.username(person.username)
    display_name = people.display_name(person.display_name)
    email = people.email(person.email)
    roles_text = " and ".join(role.label for role in held)
    existing = session.exec(select(Operator).where(Operator.username == username)).first()
    if existing is None:
        operator = Operator(
            username=username,
            display_name=display_name,
            email=email,
            role=held[0],
            second_role=held[1] if len(held) > 1 else None,
            lea_id=lea.id,  # type: ignore[arg-type]
        )
        session.add(operator)
        session.flush()
        detail = {"roles": [role.value for role in held], "school": None}
        audit.record(session, SETUP_ACTOR, "operator.add", username, detail, lea_id=lea.id)
        result.lines.append(f"{roles_text}: {username} ({display_name}) added")
        result.changed = True
        return
    same = (existing.lea_id, set(existing.roles), existing.display_name, existing.email) == (
        lea.id,
        set(held),
        display_name,
        email,
    )
    if not same:
        raise InvalidInput(
            f"An operator named {username!r} already exists with other details; change them "
            "with `ssr-console operator`, or choose another username"
        )
    result.lines.append(f"{roles_text}: {username} already set up, unchanged")
