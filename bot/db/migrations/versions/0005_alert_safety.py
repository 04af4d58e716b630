"""alert safety and the patient's voice: outbox claim priority, unreachable staff recipients,
patient messages

Revision ID: 0005
Revises: 0003_audit_hardening
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

import bot.db.types

revision = "0005"
down_revision = "0003_audit_hardening"
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


    op.create_table(
        "patient_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("direction", sa.String(length=12), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("matched", sa.JSON(), nullable=False),
        sa.Column("author", sa.String(length=48), nullable=False),
        sa.Column("telegram_message_id", sa.BigInteger(), nullable=True),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("update_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["alert.id"]),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("patient_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_patient_message_alert_id"), ["alert_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_patient_message_patient_id"), ["patient_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("patient_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_message_patient_id"))
        batch_op.drop_index(batch_op.f("ix_patient_message_alert_id"))
    op.drop_table("patient_message")
    with op.batch_alter_table("unreachable_recipient", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_unreachable_recipient_site_id"))
    op.drop_table("unreachable_recipient")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("priority")
