"""student groups, family channel choices and the report units behind aggregate reports

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 15:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('family_channel',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('guardian_id', sa.Integer(), nullable=False),
    sa.Column('lea_id', sa.Integer(), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=1), nullable=False),
    sa.Column('previous', sqlmodel.sql.sqltypes.AutoString(length=1), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('set_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('set_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['guardian_id'], ['guardian.id'], ),
    sa.ForeignKeyConstraint(['lea_id'], ['lea.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('family_channel', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_family_channel_guardian_id'), ['guardian_id'], unique=False)

    op.create_table('report_unit',
    sa.Column('student_id', sa.Integer(), nullable=False),
    sa.Column('program', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('lea_id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=False),
    sa.Column('grade', sa.Integer(), nullable=False),
    sa.Column('language', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('received', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('code', sa.Integer(), nullable=False),
    sa.Column('refreshed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['lea_id'], ['lea.id'], ),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], ),
    sa.ForeignKeyConstraint(['student_id'], ['student.id'], ),
    sa.PrimaryKeyConstraint('student_id', 'program')
    )
    with op.batch_alter_table('report_unit', schema=None) as batch_op:
        batch_op.create_index('ix_report_unit_breakdown', ['lea_id', 'school_id', 'grade', 'language', 'program', 'code'], unique=False)
        batch_op.create_index('ix_report_unit_risk', ['lea_id', 'code', 'program', 'received'], unique=False)

    op.create_table('student_group',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lea_id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=True),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('school_year', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('students', sa.Integer(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['lea_id'], ['lea.id'], ),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('lea_id', 'school_id', 'school_year', 'subject', 'name', name='uq_student_group_name')
    )
    with op.batch_alter_table('student_group', schema=None) as batch_op:
        batch_op.create_index('ix_student_group_lea_school', ['lea_id', 'school_id'], unique=False)

    op.create_table('student_group_login',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('login', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['student_group.id'], ),
    sa.PrimaryKeyConstraint('group_id', 'login')
    )
    op.create_table('student_group_member',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('student_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['student_group.id'], ),
    sa.ForeignKeyConstraint(['student_id'], ['student.id'], ),
    sa.PrimaryKeyConstraint('group_id', 'student_id')
    )
    with op.batch_alter_table('student_group_member', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_student_group_member_student_id'), ['student_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('student_group_member', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_student_group_member_student_id'))

    op.drop_table('student_group_member')
    op.drop_table('student_group_login')
    with op.batch_alter_table('student_group', schema=None) as batch_op:
        batch_op.drop_index('ix_student_group_lea_school')

    op.drop_table('student_group')
    with op.batch_alter_table('report_unit', schema=None) as batch_op:
        batch_op.drop_index('ix_report_unit_risk')
        batch_op.drop_index('ix_report_unit_breakdown')

    op.drop_table('report_unit')
    with op.batch_alter_table('family_channel', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_family_channel_guardian_id'))

    op.drop_table('family_channel')
