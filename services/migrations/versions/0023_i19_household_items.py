"""households: a portal or print batch holds a student once per household, not once; guardians
are found by household (how many guardians a family's delivery serves)

Revision ID: i19_household_items
Revises: i21_import_queue
Create Date: 2026-11-29 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'i19_household_items'
down_revision: str | None = 'i21_import_queue'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('guardian', schema=None) as batch_op:
        batch_op.create_index('ix_guardian_household', ['household'], unique=False)
    with op.batch_alter_table('channel_item', schema=None) as batch_op:
        batch_op.drop_constraint('uq_channel_item_student', type_='unique')
        batch_op.create_unique_constraint(
            'uq_channel_item_student_guardian', ['batch_id', 'student_id', 'guardian_id']
        )


def downgrade() -> None:
    # One item per student again: a second household's item of the same batch goes (the lowest
    # id, the first household, stays), as before this revision only one was ever made.
    item = sa.table(
        'channel_item', sa.column('id'), sa.column('batch_id'), sa.column('student_id')
    )
    first = sa.select(sa.func.min(item.c.id)).group_by(item.c.batch_id, item.c.student_id)
    op.execute(item.delete().where(item.c.id.not_in(first)))
    with op.batch_alter_table('channel_item', schema=None) as batch_op:
        batch_op.drop_constraint('uq_channel_item_student_guardian', type_='unique')
        batch_op.create_unique_constraint('uq_channel_item_student', ['batch_id', 'student_id'])
    with op.batch_alter_table('guardian', schema=None) as batch_op:
        batch_op.drop_index('ix_guardian_household')
