"""SIS-vendor credentials, reset requests, systems and checklist

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 15:25:17.328908
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('credential',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lea_id', sa.Integer(), nullable=False),
    sa.Column('username', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('secret_hash', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('revoked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('revoked_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('emergency', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['lea_id'], ['lea.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('credential', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credential_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index('ix_credential_lea_created', ['lea_id', 'created_at'], unique=False)
        batch_op.create_index('uq_credential_live_per_lea', ['lea_id'], unique=True, sqlite_where=sa.text('revoked_at IS NULL'), postgresql_where=sa.text('revoked_at IS NULL'))

    op.create_table('credential_system',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lea_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('token_url', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('added_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('added_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('retired_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['lea_id'], ['lea.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('credential_system', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credential_system_lea_id'), ['lea_id'], unique=False)
        batch_op.create_index('uq_credential_system_active_name', ['lea_id', 'name'], unique=True, sqlite_where=sa.text('retired_at IS NULL'), postgresql_where=sa.text('retired_at IS NULL'))

    op.create_table('credential_checklist',
    sa.Column('credential_id', sa.Integer(), nullable=False),
    sa.Column('system_id', sa.Integer(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('updated_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('tested_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('test_ok', sa.Boolean(), nullable=True),
    sa.Column('test_message', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.ForeignKeyConstraint(['credential_id'], ['credential.id'], ),
    sa.ForeignKeyConstraint(['system_id'], ['credential_system.id'], ),
    sa.PrimaryKeyConstraint('credential_id', 'system_id')
    )
    with op.batch_alter_table('credential_checklist', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credential_checklist_system_id'), ['system_id'], unique=False)

    op.create_table('credential_reset',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lea_id', sa.Integer(), nullable=False),
    sa.Column('replaces_id', sa.Integer(), nullable=True),
    sa.Column('requested_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('requested_role', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('requested_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('planned_for', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('vendor_contact', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('acknowledged_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('acknowledged_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('confirmed_with', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('confirmed_on', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('confirmed_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('confirmed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('emergency_reason', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('cancelled_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('cancelled_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('credential_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['credential_id'], ['credential.id'], ),
    sa.ForeignKeyConstraint(['lea_id'], ['lea.id'], ),
    sa.ForeignKeyConstraint(['replaces_id'], ['credential.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('credential_reset', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credential_reset_lea_id'), ['lea_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('credential_reset', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credential_reset_lea_id'))

    op.drop_table('credential_reset')
    with op.batch_alter_table('credential_checklist', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credential_checklist_system_id'))

    op.drop_table('credential_checklist')
    with op.batch_alter_table('credential_system', schema=None) as batch_op:
        batch_op.drop_index('uq_credential_system_active_name', sqlite_where=sa.text('retired_at IS NULL'), postgresql_where=sa.text('retired_at IS NULL'))
        batch_op.drop_index(batch_op.f('ix_credential_system_lea_id'))

    op.drop_table('credential_system')
    with op.batch_alter_table('credential', schema=None) as batch_op:
        batch_op.drop_index('uq_credential_live_per_lea', sqlite_where=sa.text('revoked_at IS NULL'), postgresql_where=sa.text('revoked_at IS NULL'))
        batch_op.drop_index('ix_credential_lea_created')
        batch_op.drop_index(batch_op.f('ix_credential_expires_at'))

    op.drop_table('credential')
