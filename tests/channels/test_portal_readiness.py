"""Portal (option A) readiness on the demo LEA: the checklist, operator answers, the share trend,
publishing the portal batch, and the hand-off of the families the portal does not reach."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from services.audit.tables import AuditEvent
from services.channels import batches as channel_batches
from services.channels import portal_readiness
from services.channels.portal_readiness import Mark, Setup
from services.channels.portal_tables import PortalShareSample
from services.core.channels import Option
from services.core.columns import utcnow
from services.core.errors import InvalidInput, PermissionDenied
from services.delivery.ledger import BatchStatus, DeliveryBatch
from services.plan import coverage
from services.roster.tables import Guardian
from tests.channel_world import World, world
from tests.credentials_world import record_credential
from tests.plan.test_coverage import combined_plan, family_channels


@pytest.fixture
def demo(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> World:
    return world(tmp_path_factory.getbasetemp(), tmp_path)


def marks(state: portal_readiness.Readiness) -> dict[str, Mark]:
    return {item.key: item.mark for item in state.items}


def test_checklist_from_nothing_to_ready(demo: World) -> None:
    w = demo
    operator = w.operator()
    today = utcnow().date()
    start = portal_readiness.check(w.engine, operator)
    assert marks(start) == {
        "portal": Mark.FAIL,
        "vendor": Mark.FAIL,
        "credential": Mark.FAIL,
        "share": Mark.WARN,  # the demo's families use the portal about 60% of the time
        "calpads": Mark.FAIL,
        "not_reached": Mark.WARN,
    }
    assert not start.ready and start.not_reached > 0
    with pytest.raises(InvalidInput, match="cannot carry SSRs yet"):
        portal_readiness.publish(w.engine, operator)

    # Operator answers, checked and audited.
    with pytest.raises(InvalidInput, match="YYYY-MM-DD"):
        portal_readiness.parse_date("25/11/2026", today)
    with pytest.raises(InvalidInput, match="in the future"):
        portal_readiness.parse_date(str(today + timedelta(days=1)), today)
    with pytest.raises(InvalidInput, match="Name the vendor"):
        portal_readiness.save_setup(w.engine, operator, Setup(True, "  ", True))
    with pytest.raises(PermissionDenied):
        portal_readiness.save_setup(w.engine, w.operator("helpdesk"), Setup(True))
    calpads = portal_readiness.parse_date(str(today - timedelta(days=200)), today)
    saved = portal_readiness.save_setup(w.engine, operator, Setup(True, "Aeries", True, calpads))
    assert saved.updated_by == "caaspp" and saved.vendor_name == "Aeries"
    record_credential(w.engine, operator, generated_on=(utcnow() - timedelta(days=360)).date())

    # A share sample from last week shows the trend.
    with Session(w.engine) as session:
        families = start.items[3].detail.split("of ")[1].split(")")[0].replace(",", "")
        session.add(
            PortalShareSample(
                lea_id=operator.lea_id,
                taken_on=today - timedelta(days=7),
                families=int(families),
                portal_families=0,
            )
        )
        session.commit()
    state = portal_readiness.check(w.engine, operator)
    assert marks(state)["portal"] is Mark.OK and marks(state)["vendor"] is Mark.OK
    assert marks(state)["credential"] is Mark.WARN  # expires in about five days
    assert marks(state)["calpads"] is Mark.WARN  # 200 days ago
    share = next(i for i in state.items if i.key == "share")
    assert f"up {round(state.share * 100)} pt since {today - timedelta(days=7):%Y-%m-%d}" in (
        share.detail
    )
    assert state.ready
    with Session(w.engine) as session:
        days = session.exec(select(PortalShareSample.taken_on)).all()
        actions = session.exec(select(AuditEvent.action)).all()
    assert sorted(days) == [today - timedelta(days=7), today]
    assert "portal.setup" in actions

    # Publishing records the plan's portal families as delivered through the portal.
    channels = combined_plan(w)
    portal_families = {g for g, o in family_channels(w, channels).items() if o is Option.PORTAL}
    batch = portal_readiness.publish(w.engine, operator)
    assert batch.channel == "A" and batch.status is BatchStatus.FINISHED
    assert batch.families == len(portal_families)
    assert coverage.summary(w.engine, operator).by_channel[Option.PORTAL] == batch.students


def test_families_not_reached_are_one_key_from_another_channel(demo: World) -> None:
    w = demo
    operator = w.operator()
    families = portal_readiness.not_reached(w.engine, operator, limit=1000)
    with Session(w.engine) as session:
        people = {g.id: g for g in session.exec(select(Guardian)).all()}
    assert families and all(not people[f.guardian_id].uses_portal for f in families)
    assert len(families) == portal_readiness.count_not_reached(w.engine, operator)
    with_email = [f for f in families if f.email]

    # Secure email first for those with an address, then print for the rest.
    email = portal_readiness.handoff(w.engine, operator, Option.SECURE)
    assert email.families == len(with_email)
    with Session(w.engine) as session:
        delivery = session.get(DeliveryBatch, email.batch_id)
    assert delivery is not None and delivery.total_items == len(with_email)
    rest = portal_readiness.not_reached(w.engine, operator, limit=1000)
    assert {f.guardian_id for f in rest} == {f.guardian_id for f in families if not f.email}
    printed = portal_readiness.handoff(w.engine, operator, Option.PRINT)
    assert printed.families == len(rest)
    assert channel_batches.get(w.engine, operator, printed.batch_id).channel == "C"
    assert portal_readiness.count_not_reached(w.engine, operator) == 0
    with pytest.raises(InvalidInput, match="No student with an SSR"):
        portal_readiness.handoff(w.engine, operator, Option.PAPER)
    with pytest.raises(PermissionDenied):
        portal_readiness.handoff(w.engine, w.operator("tech"), Option.PRINT)


def test_a_calpads_date_in_range_is_ok(demo: World) -> None:
    w = demo
    operator = w.operator()
    recent = utcnow().date() - timedelta(days=10)
    portal_readiness.save_setup(w.engine, operator, Setup(False, "", False, recent))
    state = portal_readiness.check(w.engine, operator)
    assert marks(state)["calpads"] is Mark.OK and "10 days ago" in state.items[4].detail
