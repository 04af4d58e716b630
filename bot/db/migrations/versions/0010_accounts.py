"""accounts: patients, helpers, invitations, acknowledgements and strangers' counters name a
person by a channel-neutral account instead of a Telegram id

- patient, helper: `telegram_user_id` / `chat_id` (integers) become `channel` ("telegram"),
  `account` (the person's id on that channel, as text) and `address` (where to send, as text).
- invitation.used_by_telegram_id → used_by_account, alert.acknowledged_by (integer) → text, and
  stranger_attempt.telegram_id → account: each the account key "telegram:<id>".
- patient_message.telegram_message_id → channel_message_id (same values).
- The coordinator table, which the bot never read or wrote (staff live in the config), is dropped;
  the upgrade refuses to run if anybody put rows there by hand.

Every value is kept on the way up. Existing audit rows are not touched (the hash chain): they
keep naming people by their bare Telegram id, which the exports still scrub. Downgrading turns the
Telegram accounts back into integers; accounts on other channels cannot be expressed there (their
invitations and acknowledgements lose the name, their helpers are dropped).

Revision ID: 0010_accounts
Revises: 0009_dialogs
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

import bot.db.types

revision = "0010_accounts"
down_revision = "0009_dialogs"
branch_labels = None
depends_on = None

KEY_PREFIX = "telegram:"


def _key(column: str) -> str:
    return f"'{KEY_PREFIX}' || CAST({column} AS VARCHAR(64))"


def _id_of_key(column: str) -> str:
    return f"CAST(SUBSTR({column}, {len(KEY_PREFIX) + 1}) AS BIGINT)"


def _is_telegram_key(column: str) -> str:
    return f"{column} LIKE '{KEY_PREFIX}%'"


def _drop_default(table: str, column: str) -> None:
    # SQLite keeps a column default until the table is rebuilt (which patients cannot be: other
    # tables' rows reference them, and foreign keys stay on inside the migration). Harmless there:
    # every insert names the channel.
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(table, column, server_default=None, existing_type=sa.String(length=16))


def upgrade() -> None:
    if op.get_bind().execute(sa.text("SELECT COUNT(*) FROM coordinator")).scalar():
        raise RuntimeError("the coordinator table has rows, but the bot never wrote it: staff are in the config. "
                           "Move those rows into the config and delete them, then migrate again.")
    # patient, invitation and alert are referenced by other tables' rows, so they are altered in
    # place (ALTER TABLE … ADD / DROP / RENAME COLUMN, SQLite 3.35+), never rebuilt.
    op.execute("ALTER TABLE patient ADD COLUMN channel VARCHAR(16) NOT NULL DEFAULT 'telegram'")
    op.execute("ALTER TABLE patient ADD COLUMN account VARCHAR(64)")
    op.execute("ALTER TABLE patient ADD COLUMN address VARCHAR(254)")
    op.execute("UPDATE patient SET account = CAST(telegram_user_id AS VARCHAR(64)), "
               "address = CAST(chat_id AS VARCHAR(254))")
    _drop_default("patient", "channel")
    op.drop_index("ix_patient_telegram_user_id", table_name="patient")
    op.execute("ALTER TABLE patient DROP COLUMN telegram_user_id")
    op.execute("ALTER TABLE patient DROP COLUMN chat_id")
    op.create_index("ix_patient_channel_account", "patient", ["channel", "account"], unique=False)

    with op.batch_alter_table("helper", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel", sa.String(length=16), nullable=False, server_default="telegram"))
        batch_op.add_column(sa.Column("account", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("address", sa.String(length=254), nullable=True))
    op.execute("UPDATE helper SET account = CAST(telegram_user_id AS VARCHAR(64)), "
               "address = CAST(chat_id AS VARCHAR(254))")
    with op.batch_alter_table("helper", schema=None) as batch_op:
        batch_op.alter_column("channel", existing_type=sa.String(length=16), server_default=None)
        batch_op.alter_column("account", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("address", existing_type=sa.String(length=254), nullable=False)
        batch_op.drop_index(batch_op.f("ix_helper_telegram_user_id"))
        batch_op.drop_column("telegram_user_id")
        batch_op.drop_column("chat_id")
        batch_op.create_index("ix_helper_channel_account", ["channel", "account"], unique=False)

    op.execute("ALTER TABLE invitation ADD COLUMN used_by_account VARCHAR(64)")
    op.execute(f"UPDATE invitation SET used_by_account = {_key('used_by_telegram_id')} "
               "WHERE used_by_telegram_id IS NOT NULL")
    op.execute("ALTER TABLE invitation DROP COLUMN used_by_telegram_id")

    op.execute("ALTER TABLE alert ADD COLUMN acknowledged_by_account VARCHAR(64)")
    op.execute(f"UPDATE alert SET acknowledged_by_account = {_key('acknowledged_by')} "
               "WHERE acknowledged_by IS NOT NULL")
    op.execute("ALTER TABLE alert DROP COLUMN acknowledged_by")
    op.execute("ALTER TABLE alert RENAME COLUMN acknowledged_by_account TO acknowledged_by")

    op.execute("ALTER TABLE patient_message RENAME COLUMN telegram_message_id TO channel_message_id")

    with op.batch_alter_table("stranger_attempt", schema=None) as batch_op:
        batch_op.alter_column("telegram_id", new_column_name="account", type_=sa.String(length=64),
                              existing_type=sa.String(length=32), existing_nullable=False)
    op.execute(f"UPDATE stranger_attempt SET account = '{KEY_PREFIX}' || account")

    op.drop_index("ix_coordinator_site_id", table_name="coordinator")
    op.drop_table("coordinator")


def downgrade() -> None:
    op.create_table(
        "coordinator",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("site_id", sa.String(length=8), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("telegram_id"),
    )
    op.create_index("ix_coordinator_site_id", "coordinator", ["site_id"], unique=False)

    op.execute(f"DELETE FROM stranger_attempt WHERE NOT ({_is_telegram_key('account')})")
    op.execute(f"UPDATE stranger_attempt SET account = SUBSTR(account, {len(KEY_PREFIX) + 1})")
    with op.batch_alter_table("stranger_attempt", schema=None) as batch_op:
        batch_op.alter_column("account", new_column_name="telegram_id", type_=sa.String(length=32),
                              existing_type=sa.String(length=64), existing_nullable=False)

    op.execute("ALTER TABLE patient_message RENAME COLUMN channel_message_id TO telegram_message_id")

    op.execute("ALTER TABLE alert ADD COLUMN acknowledged_by_id BIGINT")
    op.execute(f"UPDATE alert SET acknowledged_by_id = {_id_of_key('acknowledged_by')} "
               f"WHERE {_is_telegram_key('acknowledged_by')}")
    op.execute("ALTER TABLE alert DROP COLUMN acknowledged_by")
    op.execute("ALTER TABLE alert RENAME COLUMN acknowledged_by_id TO acknowledged_by")

    op.execute("ALTER TABLE invitation ADD COLUMN used_by_telegram_id BIGINT")
    op.execute(f"UPDATE invitation SET used_by_telegram_id = {_id_of_key('used_by_account')} "
               f"WHERE {_is_telegram_key('used_by_account')}")
    op.execute("ALTER TABLE invitation DROP COLUMN used_by_account")

    op.execute("DELETE FROM helper WHERE channel <> 'telegram'")
    with op.batch_alter_table("helper", schema=None) as batch_op:
        batch_op.add_column(sa.Column("telegram_user_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("chat_id", sa.BigInteger(), nullable=True))
    op.execute("UPDATE helper SET telegram_user_id = CAST(account AS BIGINT), chat_id = CAST(address AS BIGINT)")
    with op.batch_alter_table("helper", schema=None) as batch_op:
        batch_op.alter_column("telegram_user_id", existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column("chat_id", existing_type=sa.BigInteger(), nullable=False)
        batch_op.drop_index("ix_helper_channel_account")
        batch_op.drop_column("account")
        batch_op.drop_column("address")
        batch_op.drop_column("channel")
        batch_op.create_index(batch_op.f("ix_helper_telegram_user_id"), ["telegram_user_id"], unique=False)

    op.execute("ALTER TABLE patient ADD COLUMN telegram_user_id BIGINT")
    op.execute("ALTER TABLE patient ADD COLUMN chat_id BIGINT")
    op.execute("UPDATE patient SET telegram_user_id = CAST(account AS BIGINT), chat_id = CAST(address AS BIGINT) "
               "WHERE channel = 'telegram'")
    op.drop_index("ix_patient_channel_account", table_name="patient")
    op.execute("ALTER TABLE patient DROP COLUMN account")
    op.execute("ALTER TABLE patient DROP COLUMN address")
    op.execute("ALTER TABLE patient DROP COLUMN channel")
    op.create_index("ix_patient_telegram_user_id", "patient", ["telegram_user_id"], unique=False)
