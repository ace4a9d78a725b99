"""the credential is the one TOMS issues: sealed secret, generation day, verification; earlier
console-made credentials kept as history only

Revision ID: i18_toms_credential
Revises: i17_operator_keys
Create Date: 2026-11-29 17:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = 'i18_toms_credential'
down_revision: str | None = 'i17_operator_keys'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NEW = [
    ('origin', sqlmodel.sql.sqltypes.AutoString(length=16), "'toms'"),
    ('secret_sealed', sqlmodel.sql.sqltypes.AutoString(length=500), None),
    ('generated_on', sa.Date(), None),
    ('verified_at', sqlmodel.sql.sqltypes.UTCDateTime(), None),
    ('verified_by', sqlmodel.sql.sqltypes.AutoString(length=64), None),
    ('checked_at', sqlmodel.sql.sqltypes.UTCDateTime(), None),
    ('check_message', sqlmodel.sql.sqltypes.AutoString(length=300), None),
]


def upgrade() -> None:
    with op.batch_alter_table('credential', schema=None) as batch_op:
        for name, kind, default in _NEW:
            batch_op.add_column(
                sa.Column(name, kind, nullable=default is None, server_default=default and sa.text(default))
            )
    # Every credential so far was invented by the console itself; TOMS never issued it, so nothing
    # accepts it. It stays in the history, superseded, and its argon2id hash goes.
    op.execute(
        "UPDATE credential SET origin = 'legacy', revoked_by = COALESCE(revoked_by, 'migration'), "
        "revoked_at = COALESCE(revoked_at, CURRENT_TIMESTAMP)"
    )
    with op.batch_alter_table('credential', schema=None) as batch_op:
        batch_op.alter_column('origin', server_default=None)
        batch_op.alter_column(
            'fingerprint', existing_type=sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True
        )
        batch_op.drop_column('secret_hash')
    with op.batch_alter_table('credential_reset', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('self_coordinated', sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table('credential_reset', schema=None) as batch_op:
        batch_op.alter_column('self_coordinated', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('credential_reset', schema=None) as batch_op:
        batch_op.drop_column('self_coordinated')
    op.execute("UPDATE credential SET fingerprint = '' WHERE fingerprint IS NULL")
    with op.batch_alter_table('credential', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'secret_hash',
                sqlmodel.sql.sqltypes.AutoString(length=200),
                nullable=False,
                server_default='',
            )
        )
        batch_op.alter_column(
            'fingerprint', existing_type=sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False
        )
        for name, _, _ in reversed(_NEW):
            batch_op.drop_column(name)
