"""A print run (C), an ETS paper order (D) or a portal batch (A) for a scope typed as on the Batches
screen (``services.delivery.batches.parse_scope``): what ``ssr-console batch create`` starts.

Each goes through its channel's own service, as its screen does (``print_batch``, ``paper_order``,
``portal_readiness.publish``), so permissions, scope, coverage and audit are the screens'. These
channels choose students by school and grade and by who: the plan's families of the channel
(typed ``plan``, the screens' default) or every family of the scope not yet on a channel (``lea``,
``school <CDS>``, ``grade <n>``, the screens' "every family not yet on a channel"). A portal batch
publishes the plan's portal families, as ctrl+u on the portal screen does. ``corrections`` takes
the families owed a corrected SSR whose earlier report went by this channel (``Who.CORRECTIONS``):
a print run of corrections, an ETS order of them, the portal publishing them. Student groups and
guardian lists are secure-email scopes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Engine

from services.access.tables import Operator
from services.channels import batches as channel_batches
from services.channels import paper_order, portal_readiness, print_batch
from services.channels.batches import ChannelBatch, Scope
from services.core.channels import Option
from services.core.errors import InvalidInput
from services.core.scope import Source
from services.core.settings import Settings
from services.delivery.batches import Selection
from services.plan.advisor import money
from services.plan.coverage import Who

TAKES = (Source.LEA, Source.PLAN, Source.SCHOOL, Source.GRADE, Source.CORRECTIONS)
"""The typed scopes a print run or an ETS paper order takes."""


def channel_scope(channel: Option, selection: Selection) -> tuple[Scope, Who]:
    """The channel services' scope and families for a typed scope, or a refusal naming what the
    channel takes."""
    if channel is Option.SECURE or channel not in channel_batches.CHANNELS:
        raise InvalidInput(f"Channel {channel.value} batches are made by the secure-email service")
    if channel is Option.PORTAL and (
        selection.source not in (Source.PLAN, Source.CORRECTIONS)
        or selection.program
        or selection.admin_year
    ):
        raise InvalidInput(
            "A portal batch publishes the plan's portal families for the current year: type "
            "the scope plan (or corrections), with no program or year"
        )
    if selection.source not in TAKES:
        raise InvalidInput(
            f"A {channel.caption.lower()} batch takes the scope lea, plan, school <CDS>, "
            f"grade <n> or corrections; {selection.source.value} is a secure-email scope"
        )
    program = selection.program.value if selection.program else None
    scope = Scope(selection.school_id, selection.grade, program, selection.admin_year)
    chosen = {Source.PLAN: Who.PLAN, Source.CORRECTIONS: Who.CORRECTIONS}
    return scope, chosen.get(selection.source, Who.ALL)


@dataclass(frozen=True)
class ChannelPreview:
    """What a channel batch would hold (nothing is recorded): its figures and the screen's text."""

    channel: Option
    text: str
    figures: dict[str, Any]


def preview(
    engine: Engine, settings: Settings, operator: Operator, channel: Option, selection: Selection
) -> ChannelPreview:
    """The figures the channel's screen shows before its batch is created."""
    scope, who = channel_scope(channel, selection)
    if channel is Option.PRINT:
        seen = print_batch.preview(engine, operator, scope=scope, who=who)
        text = (
            f"{seen.families:,} families, {seen.students:,} students would be printed; "
            f"{seen.without_address:,} without a usable address (listed, not printed)"
        )
        return ChannelPreview(channel, text, asdict(seen))
    if channel is Option.PAPER:
        order = paper_order.preview(
            engine, operator, scope=scope, who=who, rates=channel_batches.configured_rates(settings)
        )
        language = operator.language
        kind = "stuffed" if order.stuffed else "per SSR"
        text = (
            f"{order.ssrs:,} SSRs for {order.students:,} students in {order.families:,} "
            f"families would be ordered from ETS at {money(order.rate, language)} {kind}: "
            f"{money(order.ets_cost, language)}, mailing {money(order.mailing_cost, language)}, "
            f"total {money(order.cost, language)}" + (f"\nNOTE: {order.note}" if order.note else "")
        )
        figures = {k: str(v) if isinstance(v, Decimal) else v for k, v in asdict(order).items()}
        return ChannelPreview(channel, text, {**figures, "cost": str(order.cost)})
    state = portal_readiness.check(engine, operator)
    lines = [f"{i.mark.symbol} {i.label}: {i.detail}" for i in state.items]
    verdict = "ready to publish" if state.ready else "NOT ready: publishing would be refused"
    return ChannelPreview(
        channel,
        "\n".join([f"The portal is {verdict}.", *lines]),
        {
            "ready": state.ready,
            "items": [
                {"key": i.key, "mark": i.mark.value, "detail": i.detail} for i in state.items
            ],
        },
    )


def create(
    engine: Engine,
    settings: Settings,
    operator: Operator,
    channel: Option,
    selection: Selection,
    *,
    name: str,
) -> ChannelBatch:
    """Create the batch as the channel's screen does: a print run queued for the worker, an ETS
    order with its CSV written (``paper_order.order_csv_path``), or the portal batch published."""
    scope, who = channel_scope(channel, selection)
    if channel is Option.PRINT:
        options = print_batch.PrintOptions(split_mb=print_batch.configured_split_mb(settings))
        return print_batch.create(
            engine, operator, name=name, scope=scope, who=who, options=options
        )
    if channel is Option.PAPER:
        rates = channel_batches.configured_rates(settings)
        order = paper_order.create(engine, operator, name=name, scope=scope, who=who, rates=rates)
        assert order.id is not None
        paper_order.export_csv(
            engine, operator, order.id, paper_order.order_csv_path(settings, order.id)
        )
        return order
    return portal_readiness.publish(engine, operator, name=name, who=who)
