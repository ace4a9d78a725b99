"""The batch progress screen shows bounced families with the reason, and ``m`` moves them to a new
print batch after asking (Textual Pilot at 80x24, keys as an operator presses them)."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from textual.widgets import DataTable

from screens.batch_progress import BatchProgressScreen
from services.access import operators
from services.channels.batches import ChannelBatch, ChannelItem
from services.core.db import session_scope
from services.core.settings import Settings
from services.delivery import batches
from services.delivery.ledger import DeliveryItem, ItemState
from tests.databases import SeedDemo
from tests.pilot import app_for, settle, text, until


def print_batches(engine: Engine) -> list[ChannelBatch]:
    with Session(engine) as session:
        return list(session.exec(select(ChannelBatch)).all())


async def test_m_moves_the_bounced_families_to_a_new_print_batch(
    engine: Engine, settings: Settings, seed_demo: SeedDemo
) -> None:
    seed_demo(engine, settings, students=40, seed=7)
    batch_id = batches.create(
        engine, operators.resolve(engine, "caaspp"), batches.Selection(), name="Spring SSRs"
    )
    with session_scope(engine) as session:
        items = session.exec(
            select(DeliveryItem)
            .where(DeliveryItem.batch_id == batch_id)
            .order_by(col(DeliveryItem.id))
        ).all()
        bounced = {items[0].guardian_id, items[1].guardian_id}
        session.execute(
            update(DeliveryItem)
            .where(col(DeliveryItem.id).in_([items[0].id, items[1].id]))
            .values(state=ItemState.BOUNCED, error="bounced: 5.1.1 User unknown (to x@example.org)")
        )
    app = app_for(engine, settings)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("b")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, BatchProgressScreen)
        await until(lambda: "bounced 2" in text(screen, "#figures"), pilot)
        problems = screen.query_one("#problem-table", DataTable)
        assert "5.1.1 User unknown" in str(problems.get_row_at(0)[2])
        await pilot.press("m")
        await settle(pilot)
        await pilot.press("n")  # not confirmed: nothing moves
        await settle(pilot)
        assert print_batches(engine) == []
        await pilot.press("m")
        await settle(pilot)
        await pilot.press("y")
        await until(lambda: len(print_batches(engine)) == 1, pilot)
    made = print_batches(engine)[0]
    with Session(engine) as session:
        moved = set(
            session.exec(
                select(ChannelItem.guardian_id).where(ChannelItem.batch_id == made.id)
            ).all()
        )
    assert made.channel == "C" and moved == bounced
