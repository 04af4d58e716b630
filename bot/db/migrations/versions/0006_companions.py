"""companions to dosing: the prohibited-medicine check (conmed_report), tablet accountability
(tablet_count), visit reminders (visit)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

import bot.db.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conmed_report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("check_point", sa.String(length=8), nullable=False),
        sa.Column("answered_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("answer", sa.String(length=8), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=True),
        sa.Column("reported_by", sa.String(length=48), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("update_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["alert.id"]),
        sa.ForeignKeyConstraint(["course_id"], ["course.id"]),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("patient_id", "course_id", "check_point", name="uq_conmed_report_check"),
    )
    with op.batch_alter_table("conmed_report", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conmed_report_course_id"), ["course_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_conmed_report_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "tablet_count",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("answered_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reported_left", sa.Integer(), nullable=False),
        sa.Column("dispensed", sa.Integer(), nullable=False),
        sa.Column("expected_left", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("reported_by", sa.String(length=48), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("update_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["alert.id"]),
        sa.ForeignKeyConstraint(["course_id"], ["course.id"]),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("course_id"),
    )
    with op.batch_alter_table("tablet_count", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tablet_count_patient_id"), ["patient_id"], unique=False)

    op.create_table(
        "visit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.String(length=8), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=48), nullable=False),
        sa.Column("updated_at", bot.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("patient_answer", sa.String(length=8), nullable=True),
        sa.Column("answered_at", bot.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attended_at", bot.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attended_by", sa.String(length=48), nullable=True),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("visit", schema=None) as batch_op:
        batch_op.create_index("ix_visit_status_at", ["status", "at"], unique=False)
        batch_op.create_index(batch_op.f("ix_visit_patient_id"), ["patient_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_visit_site_id"), ["site_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("visit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_visit_site_id"))
        batch_op.drop_index(batch_op.f("ix_visit_patient_id"))
        batch_op.drop_index("ix_visit_status_at")
    op.drop_table("visit")
    with op.batch_alter_table("tablet_count", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tablet_count_patient_id"))
    op.drop_table("tablet_count")
    with op.batch_alter_table("conmed_report", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conmed_report_patient_id"))
        batch_op.drop_index(batch_op.f("ix_conmed_report_course_id"))
    op.drop_table("conmed_report")
