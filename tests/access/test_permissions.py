"""Roles decide what each person may do; refusals name the role and the action."""

from __future__ import annotations

import pytest

from services.access.permissions import Permission, allowed, require, school_scope
from services.access.tables import Operator, Role
from services.core.errors import PermissionDenied


def _op(role: Role, school_id: int | None = None) -> Operator:
    return Operator(
        username=role.value, display_name=role.label, role=role, lea_id=1, school_id=school_id
    )


def test_only_lea_coordinators_manage_the_credential() -> None:
    assert allowed(_op(Role.LEA_CAASPP), Permission.MANAGE_CREDENTIAL)
    assert allowed(_op(Role.LEA_ELPAC), Permission.MANAGE_CREDENTIAL)
    for role in (Role.SITE, Role.TECH, Role.HELPDESK):
        assert not allowed(_op(role), Permission.MANAGE_CREDENTIAL)
        assert allowed(_op(role), Permission.VIEW_CREDENTIAL_STATUS)


def test_help_desk_never_sees_scores_and_tech_never_sees_students() -> None:
    assert not allowed(_op(Role.HELPDESK), Permission.VIEW_SCORES)
    assert allowed(_op(Role.HELPDESK), Permission.RESEND)
    assert not allowed(_op(Role.TECH), Permission.VIEW_STUDENTS)
    with pytest.raises(PermissionDenied, match="A help desk may not generate or reset"):
        require(_op(Role.HELPDESK), Permission.MANAGE_CREDENTIAL)


def test_site_coordinator_is_held_to_their_school() -> None:
    site = _op(Role.SITE, school_id=7)
    assert school_scope(site) == 7
    require(site, Permission.RUN_BATCHES, school_id=7)
    with pytest.raises(PermissionDenied, match="only run delivery batches for their own school"):
        require(site, Permission.RUN_BATCHES, school_id=8)
    with pytest.raises(PermissionDenied, match="outside their LEA"):
        require(site, Permission.RUN_BATCHES, lea_id=2)


def test_disabled_operator_may_do_nothing() -> None:
    op = _op(Role.LEA_CAASPP)
    op.active = False
    assert not allowed(op, Permission.VIEW_DASHBOARD)
    with pytest.raises(PermissionDenied, match="disabled"):
        require(op, Permission.VIEW_DASHBOARD)
