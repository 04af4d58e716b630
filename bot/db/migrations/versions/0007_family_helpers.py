"""family helpers: the helper table, the patient's helper consent, who reported a symptom

Revision ID: 0007_family_helpers
Revises: 0006
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

import bot.db.types

revision = "0007_family_helpers"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "helper",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("helper_id", sa.String(length=24), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("invitation_id", sa.Integer(), nullable=True),
        sa.Column("joined_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("removed_at", bot.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("removed_by", sa.String(length=48), nullable=True),
        sa.Column("removal_reason", sa.String(length=24), nullable=True),
        sa.ForeignKeyConstraint(["invitation_id"], ["invitation.id"]),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("helper_id"),
    )
    with op.batch_alter_table("helper", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_helper_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_helper_telegram_user_id"), ["telegram_user_id"], unique=False)
    op.add_column("patient", sa.Column("helper_consent_at", bot.db.types.UTCDateTime(timezone=True), nullable=True))
    op.add_column("symptom_report", sa.Column("helper_id", sa.String(length=24), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE … DROP COLUMN (SQLite ≥ 3.35): a batch copy of `patient` would drop the
    # table under the rows that reference it.
    op.drop_column("symptom_report", "helper_id")
    op.drop_column("patient", "helper_consent_at")
    with op.batch_alter_table("helper", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_helper_telegram_user_id"))
        batch_op.drop_index(batch_op.f("ix_helper_patient_id"))
    op.drop_table("helper")
