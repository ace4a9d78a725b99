"""delivery steps: the day print and paper reached families, the message in doubt, relay outages

Revision ID: i19_delivery_steps
Revises: 0016_roster
Create Date: 2026-11-29 17:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = 'i19_delivery_steps'
down_revision: str | None = '0016_roster'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('channel_item', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delivered_on', sa.Date(), nullable=True))
    with op.batch_alter_table('delivery_item', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('message_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
        )
        batch_op.add_column(
            sa.Column('handed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    with op.batch_alter_table('delivery_worker', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('relay_down_since', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column('relay_error', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True)
        )
    # Print and paper items marked done before this revision were printed or received: nobody
    # has confirmed yet that their envelopes were mailed or handed out.
    op.execute(
        "UPDATE channel_item SET state = 'printed' WHERE state = 'done' AND batch_id IN "
        "(SELECT id FROM channel_batch WHERE channel = 'C')"
    )
    op.execute(
        "UPDATE channel_item SET state = 'received' WHERE state = 'done' AND batch_id IN "
        "(SELECT id FROM channel_batch WHERE channel = 'D')"
    )
    op.execute("DELETE FROM report_unit")  # unit codes gained a step; worked out again on refresh


def downgrade() -> None:
    op.execute("UPDATE channel_item SET state = 'done' WHERE state IN ('printed', 'received')")
    with op.batch_alter_table('delivery_worker', schema=None) as batch_op:
        batch_op.drop_column('relay_error')
        batch_op.drop_column('relay_down_since')
    with op.batch_alter_table('delivery_item', schema=None) as batch_op:
        batch_op.drop_column('handed_at')
        batch_op.drop_column('message_id')
    with op.batch_alter_table('channel_item', schema=None) as batch_op:
        batch_op.drop_column('delivered_on')
