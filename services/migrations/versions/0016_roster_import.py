"""roster import from the SIS: sourcedIds, CALPADS language and ELAS, withdrawal, custody,
do-not-contact and households

Revision ID: 0016_roster
Revises: i18_toms_credential
Create Date: 2026-11-29 17:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0016_roster"
down_revision: str | None = "i18_toms_credential"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("student", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sis_id", _TEXT(length=255), nullable=True))
        batch_op.add_column(sa.Column("home_language_code", _TEXT(length=8), nullable=True))
        batch_op.add_column(sa.Column("elas", _TEXT(length=4), nullable=True))
        batch_op.add_column(
            sa.Column("withdrawn_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.create_index("ix_student_lea_sis", ["lea_id", "sis_id"], unique=False)
    with op.batch_alter_table("guardian", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sis_id", _TEXT(length=255), nullable=True))
        batch_op.add_column(
            sa.Column("do_not_contact", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("household", _TEXT(length=255), nullable=True))
        batch_op.create_index("ix_guardian_lea_sis", ["lea_id", "sis_id"], unique=True)
    with op.batch_alter_table("student_guardian", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("receives_records", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    with op.batch_alter_table("student_guardian", schema=None) as batch_op:
        batch_op.drop_column("receives_records")
    with op.batch_alter_table("guardian", schema=None) as batch_op:
        batch_op.drop_index("ix_guardian_lea_sis")
        batch_op.drop_column("household")
        batch_op.drop_column("do_not_contact")
        batch_op.drop_column("sis_id")
    with op.batch_alter_table("student", schema=None) as batch_op:
        batch_op.drop_index("ix_student_lea_sis")
        batch_op.drop_column("withdrawn_at")
        batch_op.drop_column("elas")
        batch_op.drop_column("home_language_code")
        batch_op.drop_column("sis_id")
