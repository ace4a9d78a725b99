"""school years: the year an LEA started (year start) and the year each plan belongs to

Revision ID: i19_school_years
Revises: i21_email_change
Create Date: 2026-11-29 19:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'i19_school_years'
down_revision: str | None = 'i21_email_change'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL everywhere: an LEA that never started a year keeps following its latest imported
    # administration, and its plans so far stay its plans (services.plan.school_year).
    with op.batch_alter_table('lea', schema=None) as batch_op:
        batch_op.add_column(sa.Column('school_year', sa.Integer(), nullable=True))
    with op.batch_alter_table('distribution_plan', schema=None) as batch_op:
        batch_op.add_column(sa.Column('school_year', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('distribution_plan', schema=None) as batch_op:
        batch_op.drop_column('school_year')
    with op.batch_alter_table('lea', schema=None) as batch_op:
        batch_op.drop_column('school_year')
