"""audit anchor notices: the chain head a daily notice carries

Revision ID: i21_audit_anchor
Revises: i19_delivery_steps
Create Date: 2026-11-29 19:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = 'i21_audit_anchor'
down_revision: str | None = 'i19_delivery_steps'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('notice', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('anchor', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True)
        )


def downgrade() -> None:
    op.execute("DELETE FROM notice WHERE kind = 'audit_anchor'")
    with op.batch_alter_table('notice', schema=None) as batch_op:
        batch_op.drop_column('anchor')
