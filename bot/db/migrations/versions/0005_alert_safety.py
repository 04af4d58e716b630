"""alert safety: outbox claim priority, unreachable staff recipients

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

import bot.db.types

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="1"))
    op.create_table(
        "unreachable_recipient",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("site_id", sa.String(length=8), nullable=False),
        sa.Column("since", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("chat_id"),
    )
    with op.batch_alter_table("unreachable_recipient", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_unreachable_recipient_site_id"), ["site_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("unreachable_recipient", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_unreachable_recipient_site_id"))
    op.drop_table("unreachable_recipient")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("priority")
