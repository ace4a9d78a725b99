"""What each role may do, enforced here so a hidden button is never the only guard."""

from __future__ import annotations

import enum

from services.access.tables import Operator, Role
from services.core.errors import PermissionDenied


class Permission(enum.StrEnum):
    VIEW_DASHBOARD = "view the dashboard"
    VIEW_STUDENTS = "view students"
    VIEW_CONTACTS = "view guardian contact details"
    VIEW_SCORES = "view scores"
    MANAGE_CREDENTIAL = "generate or reset the SIS-vendor credential"
    VIEW_CREDENTIAL_STATUS = "view credential status"
    CHOOSE_PLAN = "choose the distribution plan"
    IMPORT_REPORTS = "import score reports"
    IMPORT_ROSTER = "import the roster from the SIS"
    RUN_BATCHES = "run delivery batches"
    RESEND = "resend a document or password"
    APPROVE_CONTACT_CHANGE = "approve a change of a family's email address"
    VIEW_REPORTS = "view aggregate reports"
    VIEW_AUDIT = "view the audit log"
    CONFIGURE = "change the configuration"
    MANAGE_OPERATORS = "manage operators"


_COORDINATOR = frozenset(Permission) - {Permission.CONFIGURE}
GRANTS: dict[Role, frozenset[Permission]] = {
    Role.LEA_CAASPP: _COORDINATOR | {Permission.CONFIGURE},
    Role.LEA_ELPAC: _COORDINATOR | {Permission.CONFIGURE},
    Role.SITE: frozenset(
        {
            Permission.VIEW_DASHBOARD,
            Permission.VIEW_STUDENTS,
            Permission.VIEW_CONTACTS,
            Permission.VIEW_SCORES,
            Permission.VIEW_CREDENTIAL_STATUS,
            Permission.IMPORT_REPORTS,
            Permission.RUN_BATCHES,
            Permission.RESEND,
            Permission.APPROVE_CONTACT_CHANGE,
            Permission.VIEW_REPORTS,
        }
    ),
    Role.TECH: frozenset(
        {
            Permission.VIEW_DASHBOARD,
            Permission.VIEW_CREDENTIAL_STATUS,
            Permission.VIEW_REPORTS,
            Permission.VIEW_AUDIT,
            Permission.CONFIGURE,
            Permission.MANAGE_OPERATORS,  # keys and help desk accounts (services.accounts)
        }
    ),
    Role.HELPDESK: frozenset(
        {
            Permission.VIEW_DASHBOARD,
            Permission.VIEW_STUDENTS,
            Permission.VIEW_CONTACTS,
            Permission.VIEW_CREDENTIAL_STATUS,
            Permission.RESEND,
        }
    ),
}
"""The role matrix from DESIGN.md: the tech coordinator sees counts, not students; the help desk
reads and resends but never sees scores or secrets; a site coordinator is held to one school.

An item in doubt (the relay took a message and never answered) is decided by those who run
batches (``RUN_BATCHES``), not by the help desk, which may open it to read (the recipient masked,
``services.delivery.in_doubt``): "it arrived" records a delivery, which stops the statutory
deadline clock (5 CCR § 863) and goes into the coordinators' reports, and it must be checked
against the relay's log by the full address and Message-ID; "resend" sends a second package and
password, and "give up" takes the family off its channel. Each is a batch decision the
coordinators answer for. A family on the phone is served by the help desk's own resend
(``RESEND``), which is audited with its reason like every help desk action."""


def granted(operator: Operator) -> frozenset[Permission]:
    """What the operator's roles allow together (one person may hold both coordinator roles)."""
    return frozenset().union(*(GRANTS[role] for role in operator.roles))


def allowed(operator: Operator, permission: Permission) -> bool:
    return operator.active and permission in granted(operator)


def require(
    operator: Operator,
    permission: Permission,
    *,
    school_id: int | None = None,
    lea_id: int | None = None,
) -> None:
    """Refuse with a sentence naming the role and the action when the operator may not do it."""
    if not operator.active:
        raise PermissionDenied(f"Operator {operator.username} is disabled")
    if permission not in granted(operator):
        raise PermissionDenied(f"A {operator.roles_label.lower()} may not {permission.value}")
    if lea_id is not None and lea_id != operator.lea_id:
        raise PermissionDenied(f"{operator.username} may not {permission.value} outside their LEA")
    if school_id is not None and operator.school_id is not None and school_id != operator.school_id:
        raise PermissionDenied(
            f"{operator.username} may only {permission.value} for their own school"
        )


def school_scope(operator: Operator) -> int | None:
    """The one school a site coordinator is held to, or None for LEA-wide roles."""
    return operator.school_id if operator.role is Role.SITE else None
