"""email changes the help desk asks for and a coordinator decides

Revision ID: i21_email_change
Revises: i24_bounces
Create Date: 2026-11-29 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = 'i21_email_change'
down_revision: str | None = 'i24_bounces'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'email_change',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('lea_id', sa.Integer(), nullable=False),
        sa.Column('guardian_id', sa.Integer(), nullable=False),
        sa.Column('old_email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
        sa.Column('new_email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column('requested_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('requested_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column(
            'state',
            sa.Enum('pending', 'approved', 'rejected', name='email_change_state', native_enum=False),
            nullable=False,
        ),
        sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column('decided_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column('decision_note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.ForeignKeyConstraint(['guardian_id'], ['guardian.id']),
        sa.ForeignKeyConstraint(['lea_id'], ['lea.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_email_change_guardian_id', 'email_change', ['guardian_id'])
    op.create_index('ix_email_change_lea_id', 'email_change', ['lea_id'])


def downgrade() -> None:
    op.drop_index('ix_email_change_lea_id', table_name='email_change')
    op.drop_index('ix_email_change_guardian_id', table_name='email_change')
    op.drop_table('email_change')
