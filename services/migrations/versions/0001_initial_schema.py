"""initial schema: LEA, schools, students, guardians, reports, operators, audit

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 15:19:04.367629
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('audit_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('operator', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('lea_id', sa.Integer(), nullable=True),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('target', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('prev_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_event_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_event_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_event_lea_id'), ['lea_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_event_operator'), ['operator'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_event_seq'), ['seq'], unique=True)
        batch_op.create_index(batch_op.f('ix_audit_event_target'), ['target'], unique=False)

    audit_head = op.create_table('audit_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    # the chain's tip exists from the start, so concurrent first writers queue on it
    op.bulk_insert(audit_head, [{'id': 1, 'seq': 0, 'hash': '0' * 64}])
    op.create_table('lea',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cds_code', sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('county', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('lea', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lea_cds_code'), ['cds_code'], unique=True)

    op.create_table('guardian',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lea_id', sa.Integer(), nullable=False),
    sa.Column('first_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('last_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('name_key', sqlmodel.sql.sqltypes.AutoString(length=201), nullable=False),
    sa.Column('preferred_language', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('address_line1', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('address_line2', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('city', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
    sa.Column('zip_code', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
    sa.Column('uses_portal', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['lea_id'], ['lea.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('guardian', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_guardian_email'), ['email'], unique=False)
        batch_op.create_index(batch_op.f('ix_guardian_lea_id'), ['lea_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_guardian_name_key'), ['name_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_guardian_phone'), ['phone'], unique=False)

    op.create_table('school',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lea_id', sa.Integer(), nullable=False),
    sa.Column('cds_code', sqlmodel.sql.sqltypes.AutoString(length=14), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.ForeignKeyConstraint(['lea_id'], ['lea.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('school', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_school_cds_code'), ['cds_code'], unique=True)
        batch_op.create_index(batch_op.f('ix_school_lea_id'), ['lea_id'], unique=False)

    op.create_table('operator',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('display_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('role', sa.Enum('lea_caaspp', 'lea_elpac', 'site', 'tech', 'helpdesk', name='role', native_enum=False), nullable=False),
    sa.Column('lea_id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=True),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
    sa.Column('language', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['lea_id'], ['lea.id'], ),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('operator', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_operator_lea_id'), ['lea_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_operator_username'), ['username'], unique=True)

    op.create_table('student',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ssid', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('lea_id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=False),
    sa.Column('first_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('last_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('name_key', sqlmodel.sql.sqltypes.AutoString(length=201), nullable=False),
    sa.Column('grade', sa.Integer(), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('primary_language', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('english_learner', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['lea_id'], ['lea.id'], ),
    sa.ForeignKeyConstraint(['school_id'], ['school.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('student', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_student_lea_id'), ['lea_id'], unique=False)
        batch_op.create_index('ix_student_lea_name', ['lea_id', 'name_key'], unique=False)
        batch_op.create_index('ix_student_school_grade', ['school_id', 'grade'], unique=False)
        batch_op.create_index(batch_op.f('ix_student_ssid'), ['ssid'], unique=True)

    op.create_table('score_report',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('student_id', sa.Integer(), nullable=False),
    sa.Column('program', sa.Enum('CAASPP', 'ELPAC', name='program', native_enum=False), nullable=False),
    sa.Column('admin_year', sa.Integer(), nullable=False),
    sa.Column('test', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('language', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('file_path', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('received_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['student_id'], ['student.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('student_id', 'program', 'admin_year', 'test', 'language', 'version', name='uq_score_report_identity')
    )
    with op.batch_alter_table('score_report', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_score_report_sha256'), ['sha256'], unique=False)
        batch_op.create_index(batch_op.f('ix_score_report_student_id'), ['student_id'], unique=False)

    op.create_table('student_guardian',
    sa.Column('student_id', sa.Integer(), nullable=False),
    sa.Column('guardian_id', sa.Integer(), nullable=False),
    sa.Column('relationship', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('is_primary', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['guardian_id'], ['guardian.id'], ),
    sa.ForeignKeyConstraint(['student_id'], ['student.id'], ),
    sa.PrimaryKeyConstraint('student_id', 'guardian_id')
    )
    with op.batch_alter_table('student_guardian', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_student_guardian_guardian_id'), ['guardian_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('student_guardian', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_student_guardian_guardian_id'))

    op.drop_table('student_guardian')
    with op.batch_alter_table('score_report', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_score_report_student_id'))
        batch_op.drop_index(batch_op.f('ix_score_report_sha256'))

    op.drop_table('score_report')
    with op.batch_alter_table('student', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_student_ssid'))
        batch_op.drop_index('ix_student_school_grade')
        batch_op.drop_index('ix_student_lea_name')
        batch_op.drop_index(batch_op.f('ix_student_lea_id'))

    op.drop_table('student')
    with op.batch_alter_table('operator', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_operator_username'))
        batch_op.drop_index(batch_op.f('ix_operator_lea_id'))

    op.drop_table('operator')
    with op.batch_alter_table('school', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_school_lea_id'))
        batch_op.drop_index(batch_op.f('ix_school_cds_code'))

    op.drop_table('school')
    with op.batch_alter_table('guardian', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_guardian_phone'))
        batch_op.drop_index(batch_op.f('ix_guardian_name_key'))
        batch_op.drop_index(batch_op.f('ix_guardian_lea_id'))
        batch_op.drop_index(batch_op.f('ix_guardian_email'))

    op.drop_table('guardian')
    with op.batch_alter_table('lea', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lea_cds_code'))

    op.drop_table('lea')
    op.drop_table('audit_head')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_event_target'))
        batch_op.drop_index(batch_op.f('ix_audit_event_seq'))
        batch_op.drop_index(batch_op.f('ix_audit_event_operator'))
        batch_op.drop_index(batch_op.f('ix_audit_event_lea_id'))
        batch_op.drop_index(batch_op.f('ix_audit_event_at'))
        batch_op.drop_index(batch_op.f('ix_audit_event_action'))

    op.drop_table('audit_event')
