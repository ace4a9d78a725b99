"""bounces: every message read from the bounce mailbox, the mailbox's state, Message-ID lookups

Revision ID: i24_bounces
Revises: i21_audit_anchor
Create Date: 2026-11-29 19:30:58.629888
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = 'i24_bounces'
down_revision: str | None = 'i21_audit_anchor'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('bounce_mailbox',
    sa.Column('mailbox', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('last_read_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('down_since', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.PrimaryKeyConstraint('mailbox')
    )
    op.create_table('bounce_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('outcome', sa.Enum('bounced', 'soft', 'stale', 'unmatched', 'auto_reply', 'other', name='bounce_outcome', native_enum=False), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=True),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.Column('guardian_id', sa.Integer(), nullable=True),
    sa.Column('step', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
    sa.Column('matched_by', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
    sa.Column('reporter', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('read_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['delivery_batch.id'], ),
    sa.ForeignKeyConstraint(['guardian_id'], ['guardian.id'], ),
    sa.ForeignKeyConstraint(['item_id'], ['delivery_item.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('digest')
    )
    with op.batch_alter_table('bounce_message', schema=None) as batch_op:
        batch_op.create_index('ix_bounce_message_batch_outcome', ['batch_id', 'outcome'], unique=False)
        batch_op.create_index('ix_bounce_message_guardian', ['guardian_id'], unique=False)

    with op.batch_alter_table('delivery_item', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_item_document_message_id', ['document_message_id'], unique=False)
        batch_op.create_index('ix_delivery_item_message_id', ['message_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('delivery_item', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_item_message_id')
        batch_op.drop_index('ix_delivery_item_document_message_id')

    with op.batch_alter_table('bounce_message', schema=None) as batch_op:
        batch_op.drop_index('ix_bounce_message_guardian')
        batch_op.drop_index('ix_bounce_message_batch_outcome')

    op.drop_table('bounce_message')
    op.drop_table('bounce_mailbox')
