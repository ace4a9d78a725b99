"""An item in doubt, as the operator deciding it needs to see it.

A message whose data went out without an answer may or may not be with the family. Before
deciding (resend, it arrived, give up) the operator checks the relay's log, so the decision shows
which family, the recipient, which of the two messages is in doubt, its Message-ID and when it
was handed to the relay (``DeliveryItem.message_id``/``handed_at``, written at the claim, before
the message leaves). The recipient is masked for anyone who may not run batches (the help desk),
who may read the item but not decide it (``services.access.permissions``: why).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from services.access.permissions import Permission, allowed, require, school_scope
from services.access.tables import Operator
from services.core.display import masked
from services.core.errors import InvalidInput, NotFound
from services.delivery.ledger import DeliveryBatch, DeliveryItem, ItemState, Step
from services.roster.tables import Guardian


@dataclass(frozen=True)
class InDoubt:
    """One uncertain item: whose, to whom, which message, and where to find it in the relay's log."""

    item_id: int
    family: str
    recipient: str
    step: Step
    by_sms: bool
    message_id: str
    handed_at: datetime | None
    reason: str
    may_resolve: bool = True  # False for the help desk: it reads the item, a coordinator decides

    def text(self) -> str:
        """The dialog's lines."""
        which = {
            Step.DOCUMENT: "the document (the PDF)",
            Step.PASSWORD: "the password",
            Step.NOTICE: "the notice",
        }[self.step]
        via = "SMS to" if self.by_sms and self.step is Step.PASSWORD else "email to"
        when = f"{self.handed_at:%Y-%m-%d %H:%M:%S} UTC" if self.handed_at else "not recorded"
        lines = [
            f"Item {self.item_id} · family {self.family}",
            f"In doubt: {which}, {via} {self.recipient}",
            f"Handed to the relay {when}",
        ]
        if not (self.by_sms and self.step is Step.PASSWORD):
            lines.append(f"Message-ID {self.message_id or 'not recorded'}")
        lines.append(f"Why: {self.reason}")
        return "\n".join(lines)


def in_doubt(engine: Engine, operator: Operator, item_id: int) -> InDoubt:
    """The uncertain item ``item_id`` of the operator's LEA (a site coordinator: their school)."""
    require(operator, Permission.VIEW_STUDENTS)
    school = school_scope(operator)
    with Session(engine) as session:
        item = session.get(DeliveryItem, item_id)
        batch = session.get(DeliveryBatch, item.batch_id) if item else None
        if item is None or batch is None or batch.lea_id != operator.lea_id:
            raise NotFound(f"There is no delivery item {item_id} you can see")
        if school is not None and item.school_id not in (None, school):
            raise NotFound(f"There is no delivery item {item_id} you can see")
        if item.state is not ItemState.UNCERTAIN:
            raise InvalidInput(f"Item {item_id} is {item.state.label}, not in doubt")
        guardian = session.get(Guardian, item.guardian_id)
    by_sms = batch.password_channel == "sms"  # noqa: S105 - a channel name
    step = Step(item.uncertain_step or Step.DOCUMENT.value)
    recipient = item.phone or "" if by_sms and step is Step.PASSWORD else item.address
    may_resolve = allowed(operator, Permission.RUN_BATCHES)
    if not may_resolve:
        recipient = masked(recipient) if "@" in recipient else f"…{recipient[-2:]}"
    family = f"{guardian.last_name}, {guardian.first_name}" if guardian else "unknown"
    return InDoubt(
        item_id,
        family,
        recipient,
        step,
        by_sms,
        item.message_id or "",
        item.handed_at,
        item.error or "",
        may_resolve,
    )
