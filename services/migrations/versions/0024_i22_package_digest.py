"""delivery items keep the SHA-256 of their verified package: the worker checks the file against it
before attaching it, instead of deriving the PDF key a third time (issue 22)

Revision ID: i22_package_digest
Revises: i19_household_items
Create Date: 2026-11-30 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = 'i22_package_digest'
down_revision: str | None = 'i19_household_items'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('delivery_item', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('package_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table('delivery_item', schema=None) as batch_op:
        batch_op.drop_column('package_sha256')
