"""The rules of who manages whom, two roles held by one person, and the audit of every change."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.access import operators as signin
from services.access.permissions import Permission, allowed
from services.access.tables import Operator, Role
from services.accounts import keys, lea_setup, operators
from services.accounts.lea_setup import Person
from services.audit import log as audit
from services.audit.tables import AuditEvent
from services.core.errors import InvalidInput, NotFound, PermissionDenied
from services.core.programs import Program
from services.reminders import scan as reminders
from services.roster.tables import LEA, School

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBa4DU0yF8kvSj6m7x3K5Pq2mS7y0n1+Tj4ZBiGxuA8C laptop"


@pytest.fixture
def lea(engine: Engine) -> Engine:
    lea_setup.setup(
        engine, "1964733", "Sierra Vista Unified", "Los Angeles",
        Person("ana", "Ana Ruiz", "ana@svusd.example"), Person("ana", "Ana Ruiz", "ana@svusd.example"),
    )  # fmt: skip
    return engine


def me(engine: Engine, name: str) -> Operator:
    return signin.resolve(engine, name)


def test_one_person_with_both_coordinator_roles_has_both_capabilities(lea: Engine) -> None:
    ana = me(lea, "ana")
    assert ana.roles == (Role.LEA_CAASPP, Role.LEA_ELPAC)
    assert allowed(ana, Permission.MANAGE_CREDENTIAL) and allowed(ana, Permission.MANAGE_OPERATORS)
    with Session(lea) as session:
        [coordinator] = reminders.coordinators_by_lea(session)[ana.lea_id]
    group = reminders.PendingGroup(ana.lea_id, Program.ELPAC, date(2026, 5, 1), pending=3)
    planned = reminders.plan_ssr(
        group, [coordinator], date(2026, 5, 25), reminders.ReminderPolicy()
    )
    assert planned and {p.recipient for p in planned} == {"ana"}  # ELPAC deadlines reach her too


def test_the_tech_coordinator_manages_help_desk_accounts_and_keys_only(lea: Engine) -> None:
    operators.add(lea, me(lea, "ana"), operators.NewOperator("tina", "Tina Tech", ("tech",)))
    tina = me(lea, "tina")
    operators.add(lea, tina, operators.NewOperator("hugo", "Hugo Help", ("helpdesk",), keys=(KEY,)))
    assert operators.set_active(lea, tina, "hugo", False)
    assert not operators.set_active(lea, tina, "hugo", False)  # already: nothing, no event
    with pytest.raises(PermissionDenied, match="help desk accounts only, not a site"):
        operators.add(lea, tina, operators.NewOperator("sam", "Sam", ("site",), school="x"))
    with pytest.raises(PermissionDenied, match="may not disable or enable an LEA CAASPP"):
        operators.set_active(lea, tina, "ana", False)
    with pytest.raises(PermissionDenied, match="may not change an LEA coordinator's keys"):
        keys.add_key(lea, tina, "ana", KEY.replace("laptop", "x"))
    with pytest.raises(PermissionDenied, match="Nobody disables or enables their own"):
        operators.set_active(lea, me(lea, "ana"), "ana", False)
    with pytest.raises(PermissionDenied, match="Nobody changes their own role"):
        operators.set_roles(lea, tina, "tina", ["helpdesk"])


def test_roles_scope_and_keys_are_checked(lea: Engine) -> None:
    ana = me(lea, "ana")
    with Session(lea) as session:
        lea_id = session.exec(select(LEA.id)).one()
        session.add(School(lea_id=lea_id, cds_code="19647330000001", name="Vista Elementary"))
        session.commit()
    new = operators.NewOperator
    with pytest.raises(InvalidInput, match="needs their school"):
        operators.add(lea, ana, new("sam", "Sam Site", ("site",)))
    with pytest.raises(NotFound, match="No school with CDS code 19640000000000"):
        operators.add(lea, ana, new("sam", "Sam Site", ("site",), school="19640000000000"))
    with pytest.raises(InvalidInput, match="holds no other role"):
        operators.add(lea, ana, new("sam", "Sam", ("site", "tech"), school="19647330000001"))
    with pytest.raises(InvalidInput, match="Unknown role 'boss'"):
        operators.add(lea, ana, new("sam", "Sam", ("boss",)))
    with pytest.raises(InvalidInput, match="is not a username"):
        operators.add(lea, ana, new("sam smith", "Sam", ("tech",)))
    sam = operators.add(lea, ana, new("sam", "Sam Site", ("site",), school="19647330000001"))
    assert sam.school == "19647330000001"
    fingerprint = keys.add_key(lea, ana, "sam", KEY)
    with pytest.raises(InvalidInput, match="already signs in as this operator"):
        keys.add_key(lea, ana, "sam", KEY)
    assert keys.remove_key(lea, ana, "sam", fingerprint) == fingerprint
    with pytest.raises(NotFound, match="has no key"):
        keys.remove_key(lea, ana, "sam", KEY)
    assert operators.set_roles(lea, ana, "sam", ["helpdesk"])

    with Session(lea) as session:
        events = session.exec(select(AuditEvent).order_by(AuditEvent.seq)).all()
    actions = [e.action for e in events]
    assert actions == [
        "lea.setup", "operator.add", "operator.add", "operator.key_add",
        "operator.key_remove", "operator.set_role",
    ]  # fmt: skip
    assert audit.verify(lea).ok


def test_an_empty_database_points_to_setup(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from console.cli import main

    assert main(["--database-url", sqlite_url]) == 2  # a new data directory
    assert "empty: run `ssr-console setup` for a real LEA" in capsys.readouterr().err
    assert main(["--database-url", sqlite_url, "db", "upgrade"]) == 0
    assert main(["--database-url", sqlite_url, "--operator", "maria"]) == 2
    assert "none yet: run `ssr-console setup` for a real LEA" in capsys.readouterr().err
