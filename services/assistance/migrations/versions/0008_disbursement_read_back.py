"""disbursements: updated_at (when an item's state last moved: the ministry's feed), and the indexes of the
feed and of the batch list

Revision ID: assistance_0008
Revises: assistance_0007
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'assistance_0008'
down_revision: str | Sequence[str] | None = 'assistance_0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('disbursement', schema=None) as batch_op:
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True))
    # A payment's state last moved when it was reversed, or else when it was recorded.
    op.execute("UPDATE disbursement SET updated_at = COALESCE(reversed_at, created_at)")
    with op.batch_alter_table('disbursement', schema=None) as batch_op:
        batch_op.alter_column('updated_at', existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.create_index('ix_disbursement_updated_at', ['updated_at', 'id'], unique=False)
    with op.batch_alter_table('disbursement_batch', schema=None) as batch_op:
        batch_op.create_index('ix_disbursement_batch_created_at', ['created_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('disbursement_batch', schema=None) as batch_op:
        batch_op.drop_index('ix_disbursement_batch_created_at')
    with op.batch_alter_table('disbursement', schema=None) as batch_op:
        batch_op.drop_index('ix_disbursement_updated_at')
        batch_op.drop_column('updated_at')
