"""channels: outbox rows, delivered alert copies and unreachable staff recipients are addressed
as (channel, address) instead of a Telegram chat id

Every existing row is a Telegram one: its chat id becomes the address, as text, on channel
"telegram". Nothing is dropped on the way up. Downgrading keeps the Telegram rows and drops
those on other channels (email), which the old schema cannot address.

Revision ID: 0008_channels
Revises: 0006
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

import bot.db.types

revision = "0008_channels"
down_revision = "0007_family_helpers"
branch_labels = None
depends_on = None

ADDRESSED = ("outbox", "alert_message")


def upgrade() -> None:
    for table in ADDRESSED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("channel", sa.String(length=16), nullable=False, server_default="telegram"))
            batch_op.add_column(sa.Column("address", sa.String(length=254), nullable=True))
        op.execute(f"UPDATE {table} SET address = CAST(chat_id AS VARCHAR(254))")
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("address", existing_type=sa.String(length=254), nullable=False)
            batch_op.alter_column("channel", existing_type=sa.String(length=16), server_default=None)
            batch_op.drop_column("chat_id")
    op.create_table(
        "unreachable_recipient_new",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column("site_id", sa.String(length=8), nullable=False),
        sa.Column("since", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("channel", "address", name="pk_unreachable_recipient"),
    )
    op.execute("INSERT INTO unreachable_recipient_new (channel, address, site_id, since, error) "
               "SELECT 'telegram', CAST(chat_id AS VARCHAR(254)), site_id, since, error FROM unreachable_recipient")
    with op.batch_alter_table("unreachable_recipient", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_unreachable_recipient_site_id"))
    op.drop_table("unreachable_recipient")
    op.rename_table("unreachable_recipient_new", "unreachable_recipient")
    with op.batch_alter_table("unreachable_recipient", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_unreachable_recipient_site_id"), ["site_id"], unique=False)


def downgrade() -> None:
    op.create_table(
        "unreachable_recipient_old",
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("site_id", sa.String(length=8), nullable=False),
        sa.Column("since", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("chat_id"),
    )
    op.execute("INSERT INTO unreachable_recipient_old (chat_id, site_id, since, error) "
               "SELECT CAST(address AS BIGINT), site_id, since, error FROM unreachable_recipient "
               "WHERE channel = 'telegram'")
    with op.batch_alter_table("unreachable_recipient", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_unreachable_recipient_site_id"))
    op.drop_table("unreachable_recipient")
    op.rename_table("unreachable_recipient_old", "unreachable_recipient")
    with op.batch_alter_table("unreachable_recipient", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_unreachable_recipient_site_id"), ["site_id"], unique=False)
    for table in ADDRESSED:
        op.execute(f"DELETE FROM {table} WHERE channel <> 'telegram'")
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("chat_id", sa.BigInteger(), nullable=True))
        op.execute(f"UPDATE {table} SET chat_id = CAST(address AS BIGINT)")
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("chat_id", existing_type=sa.BigInteger(), nullable=False)
            batch_op.drop_column("address")
            batch_op.drop_column("channel")
