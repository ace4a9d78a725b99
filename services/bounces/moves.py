"""One action for a batch whose emails bounced: its bounced families, as a new print run (C) or ETS
paper order (D), through that channel's own service (``print_batch.create``/``paper_order.create``,
the same permission, coverage and audit as their screens).

Bounced families are on no channel any more (``services.plan.coverage``: a bounced item covers
nobody), so the new batch takes their students in the secure-email batch's own scope (school,
grade, program, year); a student another batch has taken since is left out, as always.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from services.access.tables import Operator
from services.audit import log as audit
from services.audit.log import Actor
from services.channels import batches as channel_batches
from services.channels import paper_order, print_batch
from services.channels.batches import ChannelBatch, Scope
from services.core.channels import Option
from services.core.db import session_scope
from services.core.errors import InvalidInput
from services.core.settings import Settings
from services.delivery import batches
from services.delivery.ledger import BatchKind, DeliveryItem, ItemState
from services.plan.coverage import Who

MOVES_TO = (Option.PRINT, Option.PAPER)
"""Where bounced families can go: the channels that need no email address."""


def bounced_families(engine: Engine, batch_id: int) -> list[int]:
    """The guardians whose item of the batch bounced."""
    with Session(engine) as session:
        found = session.exec(
            select(DeliveryItem.guardian_id)
            .where(DeliveryItem.batch_id == batch_id, DeliveryItem.state == ItemState.BOUNCED)
            .order_by(col(DeliveryItem.guardian_id))
        ).all()
    return list(found)


def move_bounced(
    engine: Engine,
    settings: Settings,
    operator: Operator,
    batch_id: int,
    channel: Option = Option.PRINT,
    name: str = "",
) -> ChannelBatch:
    """Put every bounced family of secure-email batch ``batch_id`` on ``channel`` as a new batch."""
    batch = batches.get_batch(engine, operator, batch_id)  # permission and visibility
    if channel not in MOVES_TO:
        raise InvalidInput(
            f"Bounced families can move to print (C) or paper from ETS (D), not {channel.value}"
        )
    if batch.kind is BatchKind.NOTICE:
        raise InvalidInput(
            f"Batch {batch_id} is a notice: it carried no SSRs, so there is nothing to move"
        )
    families = bounced_families(engine, batch_id)
    if not families:
        raise InvalidInput(f"Batch {batch_id} has no bounced family to move")
    scope = Scope(batch.school_id, batch.grade, batch.program, batch.admin_year)
    name = name.strip() or f"Bounced from batch B{batch_id}"
    if channel is Option.PRINT:
        options = print_batch.PrintOptions(split_mb=print_batch.configured_split_mb(settings))
        moved = print_batch.create(
            engine, operator, name=name, scope=scope, who=Who.ALL, options=options, only=families
        )
    else:
        rates = channel_batches.configured_rates(settings)
        moved = paper_order.create(
            engine, operator, name=name, scope=scope, who=Who.ALL, rates=rates, only=families
        )
        assert moved.id is not None
        paper_order.export_csv(
            engine, operator, moved.id, paper_order.order_csv_path(settings, moved.id)
        )
    with session_scope(engine) as session:
        audit.record(
            session,
            Actor.of(operator),
            "bounces.moved",
            f"delivery_batch:{batch_id}",
            {"channel": channel.value, "batch": moved.id, "families": moved.families},
            lea_id=batch.lea_id,
        )
    return moved
