"""delivery ledger: batches, one item per family, worker heartbeats, persisted send quota

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-25 15:29:43.086849
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0006'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('delivery_worker',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('host', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('heartbeat_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('send_quota',
    sa.Column('window', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('window')
    )
    op.create_table('delivery_batch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lea_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=True),
    sa.Column('grade', sa.Integer(), nullable=True),
    sa.Column('program', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
    sa.Column('admin_year', sa.Integer(), nullable=True),
    sa.Column('status', sa.Enum('running', 'paused', 'cancelled', 'finished', name='batch_status', native_enum=False), nullable=False),
    sa.Column('password_channel', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('password_delay_seconds', sa.Integer(), nullable=False),
    sa.Column('total_items', sa.Integer(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['lea_id'], ['lea.id'], ),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('delivery_batch', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delivery_batch_lea_id'), ['lea_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_delivery_batch_status'), ['status'], unique=False)

    op.create_table('delivery_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('guardian_id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=True),
    sa.Column('language', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('ssr_count', sa.Integer(), nullable=False),
    sa.Column('state', sa.Enum('pending', 'packaged', 'sending_document', 'document_sent', 'sending_password', 'password_sent', 'done', 'failed', 'uncertain', 'cancelled', name='item_state', native_enum=False), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('claimed_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('claimed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('uncertain_step', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
    sa.Column('package_dir', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('sealed_password', sa.Text(), nullable=True),
    sa.Column('document_message_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('document_sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('password_due_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('password_sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['delivery_batch.id'], ),
    sa.ForeignKeyConstraint(['guardian_id'], ['guardian.id'], ),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('batch_id', 'guardian_id', name='uq_delivery_item_family')
    )
    with op.batch_alter_table('delivery_item', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_item_batch_state', ['batch_id', 'state'], unique=False)
        batch_op.create_index(batch_op.f('ix_delivery_item_guardian_id'), ['guardian_id'], unique=False)
        batch_op.create_index('ix_delivery_item_state_due', ['state', 'next_attempt_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('delivery_item', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_item_state_due')
        batch_op.drop_index(batch_op.f('ix_delivery_item_guardian_id'))
        batch_op.drop_index('ix_delivery_item_batch_state')

    op.drop_table('delivery_item')
    with op.batch_alter_table('delivery_batch', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_batch_status'))
        batch_op.drop_index(batch_op.f('ix_delivery_batch_lea_id'))

    op.drop_table('delivery_batch')
    op.drop_table('send_quota')
    op.drop_table('delivery_worker')
