"""print, paper-order and portal batches (channels A, C, D) and portal readiness answers

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 16:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('channel_batch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lea_id', sa.Integer(), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=1), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=True),
    sa.Column('grade', sa.Integer(), nullable=True),
    sa.Column('program', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
    sa.Column('admin_year', sa.Integer(), nullable=True),
    sa.Column('status', sa.Enum('running', 'paused', 'cancelled', 'finished', name='channel_batch_status', native_enum=False), nullable=False),
    sa.Column('families', sa.Integer(), nullable=False),
    sa.Column('students', sa.Integer(), nullable=False),
    sa.Column('ssrs', sa.Integer(), nullable=False),
    sa.Column('pages', sa.Integer(), nullable=False),
    sa.Column('cost_cents', sa.Integer(), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['lea_id'], ['lea.id'], ),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('channel_batch', schema=None) as batch_op:
        batch_op.create_index('ix_channel_batch_lea', ['lea_id', 'id'], unique=False)

    op.create_table('channel_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('student_id', sa.Integer(), nullable=False),
    sa.Column('guardian_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.Enum('pending', 'done', 'no_address', 'failed', 'cancelled', name='channel_item_state', native_enum=False), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['channel_batch.id'], ),
    sa.ForeignKeyConstraint(['guardian_id'], ['guardian.id'], ),
    sa.ForeignKeyConstraint(['student_id'], ['student.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('batch_id', 'student_id', name='uq_channel_item_student')
    )
    with op.batch_alter_table('channel_item', schema=None) as batch_op:
        batch_op.create_index('ix_channel_item_batch_guardian', ['batch_id', 'guardian_id'], unique=False)
        batch_op.create_index('ix_channel_item_student_state', ['student_id', 'state'], unique=False)

    op.create_table('portal_setup',
    sa.Column('lea_id', sa.Integer(), nullable=False),
    sa.Column('portal_active', sa.Boolean(), nullable=False),
    sa.Column('vendor_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('vendor_listed', sa.Boolean(), nullable=False),
    sa.Column('calpads_updated_on', sa.Date(), nullable=True),
    sa.Column('updated_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['lea_id'], ['lea.id'], ),
    sa.PrimaryKeyConstraint('lea_id')
    )
    op.create_table('portal_share_sample',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lea_id', sa.Integer(), nullable=False),
    sa.Column('taken_on', sa.Date(), nullable=False),
    sa.Column('families', sa.Integer(), nullable=False),
    sa.Column('portal_families', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['lea_id'], ['lea.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('lea_id', 'taken_on', name='uq_portal_share_day')
    )


def downgrade() -> None:
    op.drop_table('portal_share_sample')
    op.drop_table('portal_setup')
    with op.batch_alter_table('channel_item', schema=None) as batch_op:
        batch_op.drop_index('ix_channel_item_student_state')
        batch_op.drop_index('ix_channel_item_batch_guardian')

    op.drop_table('channel_item')
    with op.batch_alter_table('channel_batch', schema=None) as batch_op:
        batch_op.drop_index('ix_channel_batch_lea')

    op.drop_table('channel_batch')
