"""import runs, exceptions and report receipts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 15:24:29.979847
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('import_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('operator', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('lea_id', sa.Integer(), nullable=True),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('files', sa.Integer(), nullable=False),
    sa.Column('reports', sa.Integer(), nullable=False),
    sa.Column('stored', sa.Integer(), nullable=False),
    sa.Column('duplicates', sa.Integer(), nullable=False),
    sa.Column('new_versions', sa.Integer(), nullable=False),
    sa.Column('exceptions', sa.Integer(), nullable=False),
    sa.Column('bytes_stored', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['lea_id'], ['lea.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('import_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_import_run_lea_id'), ['lea_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_import_run_started_at'), ['started_at'], unique=False)

    op.create_table('import_exception',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('ssid', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['import_run.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('import_exception', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_import_exception_reason'), ['reason'], unique=False)
        batch_op.create_index(batch_op.f('ix_import_exception_run_id'), ['run_id'], unique=False)

    op.create_table('report_receipt',
    sa.Column('score_report_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['import_run.id'], ),
    sa.ForeignKeyConstraint(['score_report_id'], ['score_report.id'], ),
    sa.PrimaryKeyConstraint('score_report_id')
    )
    with op.batch_alter_table('report_receipt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_receipt_run_id'), ['run_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('report_receipt', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_receipt_run_id'))

    op.drop_table('report_receipt')
    with op.batch_alter_table('import_exception', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_import_exception_run_id'))
        batch_op.drop_index(batch_op.f('ix_import_exception_reason'))

    op.drop_table('import_exception')
    with op.batch_alter_table('import_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_import_run_started_at'))
        batch_op.drop_index(batch_op.f('ix_import_run_lea_id'))

    op.drop_table('import_run')
