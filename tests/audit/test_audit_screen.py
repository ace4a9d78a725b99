"""The audit screen's filter by operator, action, target and time, and verifying the chain from the
screen (intact, then after an edit made behind the console's back)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine

from screens.audit_log import AuditLogScreen
from services.access import operators
from services.audit import browse
from services.audit import log as audit
from services.audit.log import Actor
from services.audit.tables import AuditEvent
from services.core import db
from services.core.errors import InvalidInput
from services.core.settings import Settings
from tests.databases import SeedDemo
from tests.pilot import app_for, settle
from widgets.paged_table import PagedTable

SIZE = (80, 24)


@pytest.fixture
def seeded(engine: Engine, settings: Settings, seed_demo: SeedDemo) -> Engine:
    seed_demo(engine, settings, students=20, seed=2, pdfs=False)
    caaspp, helper = operators.resolve(engine, "caaspp"), operators.resolve(engine, "helpdesk")
    with db.session_scope(engine) as session:
        for i in range(3):
            audit.record(
                session, Actor.of(helper), "delivery.resend_document", f"delivery_item:{i}"
            )
        audit.record(session, Actor.of(helper), "guardian.email_corrected", "guardian:7")
        audit.record(session, Actor.of(caaspp), "credential.reset", "lea:1")
    return engine


def test_filter_by_operator_action_target_and_time(seeded: Engine) -> None:
    caaspp = operators.resolve(seeded, "caaspp")

    def count(text: str) -> int:
        return browse.audit_page(seeded, caaspp, 0, 50, text).total

    assert count("op:helpdesk") == 4
    assert count("op:helpdesk action:delivery.resend") == 3
    assert count("target:delivery_item:1") == 1
    assert count("operator:caaspp action:credential") == 1
    assert count("helpdesk") == 4  # a plain word, as before
    now = datetime.now(UTC)
    assert count(f"op:helpdesk since:{(now - timedelta(hours=1)):%Y-%m-%dT%H:%M}") == 4
    assert count(f"op:helpdesk until:{(now - timedelta(days=1)):%Y-%m-%d}") == 0
    with pytest.raises(InvalidInput, match="not a time"):
        count("since:yesterday")
    with pytest.raises(InvalidInput, match="Give a value after action:"):
        count("action:")


async def test_filter_and_verify_from_the_screen(seeded: Engine, settings: Settings) -> None:
    app = app_for(seeded, settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AuditLogScreen)
        table = screen.query_one(PagedTable)
        await pilot.press("slash")
        screen.query_one("#filter").insert_text_at_cursor("op:helpdesk action:guardian")  # type: ignore[attr-defined]
        await settle(pilot)
        assert table.total == 1 and table.rows[0][3] == "guardian.email_corrected"
        await pilot.press("enter")
        await pilot.press("v")
        await settle(pilot)
        assert "Hash chain intact" in str(screen.query_one("#chain").render())

        with db.session_scope(seeded) as session:  # someone edits the log behind our back
            session.execute(
                update(AuditEvent).where(AuditEvent.target == "guardian:7").values(target="x")
            )
        await pilot.press("v")
        await settle(pilot)
        text = str(screen.query_one("#chain").render())
        assert "BROKEN" in text and "was altered" in text
