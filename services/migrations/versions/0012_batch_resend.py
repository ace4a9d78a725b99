"""delivery batches that deliberately send again what families already have, with the reason

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 16:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('delivery_batch', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('resend_reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table('delivery_batch', schema=None) as batch_op:
        batch_op.drop_column('resend_reason')
