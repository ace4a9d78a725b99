"""operators: a second role (one person, both coordinator roles) and SSH keys stored in the database

Revision ID: i17_operator_keys
Revises: 0013n
Create Date: 2026-11-29 17:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = 'i17_operator_keys'
down_revision: str | None = '0013n'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLES = ('lea_caaspp', 'lea_elpac', 'site', 'tech', 'helpdesk')


def upgrade() -> None:
    with op.batch_alter_table('operator', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'second_role',
                sa.Enum(*ROLES, name='second_role', native_enum=False),
                nullable=True,
            )
        )
    op.create_table(
        'operator_key',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('operator_id', sa.Integer(), nullable=False),
        sa.Column('key_type', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('public_key', sqlmodel.sql.sqltypes.AutoString(length=4096), nullable=False),
        sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('comment', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column('added_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['operator_id'], ['operator.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('operator_key', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_operator_key_fingerprint'), ['fingerprint'], unique=True
        )
        batch_op.create_index(
            batch_op.f('ix_operator_key_operator_id'), ['operator_id'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('operator_key', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_operator_key_operator_id'))
        batch_op.drop_index(batch_op.f('ix_operator_key_fingerprint'))
    op.drop_table('operator_key')
    with op.batch_alter_table('operator', schema=None) as batch_op:
        batch_op.drop_column('second_role')
