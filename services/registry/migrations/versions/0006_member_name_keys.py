"""member names as compared and searched: first_name_key, last_name_key (NFC, SARA AM composed, no invisible
characters or repeated spaces), filled from the names as entered; duplicates are found on them

Revision ID: registry_0006
Revises: registry_0005
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

from shared.text import name_key

revision: str = 'registry_0006'
down_revision: str | Sequence[str] | None = 'registry_0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 5000


def upgrade() -> None:
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_name_key', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True))
        batch_op.add_column(sa.Column('last_name_key', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True))
    bind = op.get_bind()
    member = sa.table('member', sa.column('id', sa.String), sa.column('first_name', sa.String),
                      sa.column('last_name', sa.String), sa.column('first_name_key', sa.String),
                      sa.column('last_name_key', sa.String))
    rows = bind.execute(sa.select(member.c.id, member.c.first_name, member.c.last_name)).all()
    update = member.update().where(member.c.id == sa.bindparam('member_id')).values(
        first_name_key=sa.bindparam('first'), last_name_key=sa.bindparam('last'))
    for start in range(0, len(rows), CHUNK):
        bind.execute(update, [{'member_id': r.id, 'first': name_key(r.first_name), 'last': name_key(r.last_name)}
                              for r in rows[start:start + CHUNK]])
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.alter_column('first_name_key', existing_type=sqlmodel.sql.sqltypes.AutoString(length=120),
                              nullable=False)
        batch_op.alter_column('last_name_key', existing_type=sqlmodel.sql.sqltypes.AutoString(length=120),
                              nullable=False)
        batch_op.drop_index('ix_member_name_birth')
        batch_op.create_index('ix_member_name_keys_birth', ['first_name_key', 'last_name_key', 'birth_date'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('member', schema=None) as batch_op:
        batch_op.drop_index('ix_member_name_keys_birth')
        batch_op.create_index('ix_member_name_birth', ['first_name', 'last_name', 'birth_date'], unique=False)
        batch_op.drop_column('last_name_key')
        batch_op.drop_column('first_name_key')
