"""distribution plans: the advisor's saved decisions, with history and overrules

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('distribution_plan',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lea_id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=True),
    sa.Column('channels', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('recommended', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('overruled', sa.Boolean(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('has_sis', sa.Boolean(), nullable=False),
    sa.Column('sis_portal', sa.Boolean(), nullable=False),
    sa.Column('third_party_portal', sa.Boolean(), nullable=False),
    sa.Column('portal_share', sa.Float(), nullable=False),
    sa.Column('families', sa.Integer(), nullable=False),
    sa.Column('ssrs', sa.Integer(), nullable=False),
    sa.Column('cost_cents', sa.Integer(), nullable=False),
    sa.Column('breakdown', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('decided_role', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('decided_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['lea_id'], ['lea.id'], ),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('distribution_plan', schema=None) as batch_op:
        batch_op.create_index('ix_distribution_plan_scope', ['lea_id', 'school_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('distribution_plan', schema=None) as batch_op:
        batch_op.drop_index('ix_distribution_plan_scope')

    op.drop_table('distribution_plan')
