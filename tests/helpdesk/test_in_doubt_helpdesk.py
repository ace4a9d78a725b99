"""The help desk and a message in doubt (issue 19): it opens the resolve dialog from the family
screen with the recipient masked and may not decide it (``services.access.permissions`` says
why); a coordinator decides it from the same screen. Pilot, 80x24."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from textual.widgets import Static

from services.access import operators
from services.core.display import masked
from services.core.errors import PermissionDenied
from services.core.settings import Settings
from services.delivery import batches
from services.delivery.in_doubt import in_doubt
from services.delivery.ledger import DeliveryItem, ItemState, Resolution
from services.roster.tables import Student, StudentGuardian
from tests.delivery.test_delivery_screens import batch_with_problems, engine, state_of
from tests.helpdesk.test_helpdesk_screen import open_family
from tests.pilot import app_for, notices, settle
from widgets.resolve_dialog import ResolveScreen

__all__ = ["engine"]  # the seeded-demo fixture, shared with the delivery screens' tests


def doubtful_family(engine: Engine) -> tuple[DeliveryItem, str]:
    """The uncertain item of ``batch_with_problems`` and its family's student's SSID."""
    _, ids = batch_with_problems(engine)
    with Session(engine) as session:
        item = session.get(DeliveryItem, ids[1])
        assert item is not None
        ssid = session.exec(
            select(Student.ssid)
            .join(StudentGuardian, col(StudentGuardian.student_id) == col(Student.id))
            .where(StudentGuardian.guardian_id == item.guardian_id)
        ).first()
        assert ssid is not None
        return item, ssid


async def test_the_help_desk_reads_an_item_in_doubt_but_a_coordinator_decides_it(
    engine: Engine, settings: Settings
) -> None:
    item, ssid = doubtful_family(engine)
    assert item.id is not None
    app = app_for(engine, settings, "helpdesk")
    async with app.run_test(size=(80, 24)) as pilot:
        family = await open_family(app, pilot, ssid)
        assert "A message is in doubt: u shows it" in str(family.query_one("#card").render())
        await pilot.press("u")
        await settle(pilot)
        assert isinstance(app.screen, ResolveScreen)
        dialog = str(app.screen.query_one(Static).render())
        assert f"email to {masked(item.address)}" in dialog and item.address not in dialog
        assert "Message-ID <42.doubt@example.org>" in dialog
        assert "A coordinator decides it (it records a delivery): ask one. esc close" in dialog
        for key in "rsg":  # none of the decisions is the help desk's
            await pilot.press(key)
            await settle(pilot)
            assert isinstance(app.screen, ResolveScreen)
        assert state_of(engine, item.id) is ItemState.UNCERTAIN
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, ResolveScreen)
    helpdesk = operators.resolve(engine, "helpdesk")
    assert not in_doubt(engine, helpdesk, item.id).may_resolve
    with pytest.raises(PermissionDenied, match="help desk may not run delivery batches"):
        batches.resolve(engine, helpdesk, item.id, Resolution.SENT)

    app = app_for(engine, settings, "caaspp")
    async with app.run_test(size=(80, 24)) as pilot:
        await open_family(app, pilot, ssid)
        await pilot.press("u")
        await settle(pilot)
        assert isinstance(app.screen, ResolveScreen)
        assert f"email to {item.address}" in str(app.screen.query_one(Static).render())
        await pilot.press("s")  # it arrived: the password still follows
        await settle(pilot)
        assert state_of(engine, item.id) is ItemState.DOCUMENT_SENT
        assert any(f"Item {item.id}: now" in n for n in notices(app))
