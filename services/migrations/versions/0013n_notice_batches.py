"""notice batches: a batch kind (SSR delivery, or a notice telling families how the SSRs will
come) and the moment a notice batch may start sending

Revision ID: 0013n
Revises: 0012
Create Date: 2026-11-29 17:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0013n'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('delivery_batch', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'kind',
                sa.Enum('delivery', 'notice', name='batch_kind', native_enum=False),
                nullable=False,
                server_default='delivery',
            )
        )
        batch_op.add_column(
            sa.Column('send_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table('delivery_batch', schema=None) as batch_op:
        batch_op.drop_column('send_at')
        batch_op.drop_column('kind')
