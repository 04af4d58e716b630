"""dialogs and de-duplication shared by all processes: processed_update

Revision ID: 0009_dialogs
Revises: 0006
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

import bot.db.types

revision = "0009_dialogs"
down_revision = "0008_channels"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "processed_update",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seen_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", "update_id"),
    )
    with op.batch_alter_table("processed_update", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_processed_update_seen_at"), ["seen_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("processed_update", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_processed_update_seen_at"))
    op.drop_table("processed_update")
