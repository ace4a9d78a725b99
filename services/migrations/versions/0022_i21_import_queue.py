"""import queue: an import run keeps what it was asked to import, so a worker can run or resume it

Revision ID: i21_import_queue
Revises: i19_school_years
Create Date: 2026-11-29 20:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'i21_import_queue'
down_revision: str | None = 'i19_school_years'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('import_run') as batch:
        batch.add_column(sa.Column('request', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('import_run') as batch:
        batch.drop_column('request')
