"""dose integrity: who paused, held / before-registration / cancelled days, one live dose day
per patient per local date, out-of-window days, dialog state

Revision ID: 0004_dose_integrity
Revises: 0002
Create Date: 2026-11-29

Data: days of already cancelled courses that were never answered become `cancelled` (void);
where a patient still has two live days on one date (a course cancelled and registered again),
the day of the cancelled course is voided too (its answer stays in dose_event); every such
change gets a dose_event and an audit row. Existing pauses are recorded as the patient's own
unless the audit log says a coordinator or operator paused.
"""
from collections import defaultdict
from datetime import datetime, timezone

import sqlalchemy as sa
import sqlmodel
from alembic import op

import bot.db.types

revision = "0004_dose_integrity"
down_revision = "0002"
branch_labels = None
depends_on = None

LIVE = "state <> 'cancelled'"


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("patient") as batch:
        batch.add_column(sa.Column("pause_origin", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch.add_column(sa.Column("pause_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("paused_at", bot.db.types.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("dose_day") as batch:
        batch.add_column(sa.Column("out_of_window", sa.Boolean(), nullable=False, server_default=sa.false()))
    _widen_state_columns(bind)
    op.create_table(
        "dialog_state",
        sa.Column("channel_user_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("expires_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bot.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel_user_id", "kind"),
    )
    _void_days_of_cancelled_courses(bind)
    _record_pause_origins(bind)
    op.create_index("uq_dose_day_patient_date_live", "dose_day", ["patient_id", "local_date"], unique=True,
                    sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))


WIDENED = (("dose_day", "state"), ("dose_event", "from_state"), ("dose_event", "to_state"))


def _widen_state_columns(bind) -> None:
    """VARCHAR(16) → VARCHAR(24) for "before_registration".

    PostgreSQL alters the columns. SQLite does not enforce a VARCHAR length (the column keeps
    TEXT affinity either way), so only the declared type in the stored schema changes — the
    documented writable_schema procedure for changes that leave the stored data as it is. A
    table rebuild is not an option there: other tables' rows reference these, and foreign keys
    cannot be switched off inside the migration's transaction."""
    if bind.dialect.name != "sqlite":
        for table, column in WIDENED:
            op.alter_column(table, column, type_=sqlmodel.sql.sqltypes.AutoString(length=24),
                            existing_type=sqlmodel.sql.sqltypes.AutoString(length=16), existing_nullable=False)
        return
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    for table, column in WIDENED:
        sql = bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                                   (table,)).scalar()
        widened = sql.replace(f"{column} VARCHAR(16)", f"{column} VARCHAR(24)")
        if widened == sql:
            raise RuntimeError(f"{table}.{column}: expected VARCHAR(16) in {sql!r}")
        bind.exec_driver_sql("UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?", (widened, table))
    bind.exec_driver_sql(f"PRAGMA schema_version = {version + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")


def downgrade() -> None:
    op.drop_index("uq_dose_day_patient_date_live", table_name="dose_day")
    op.drop_table("dialog_state")
    with op.batch_alter_table("dose_day") as batch:
        batch.drop_column("out_of_window")
    with op.batch_alter_table("patient") as batch:
        batch.drop_column("paused_at")
        batch.drop_column("pause_reason")
        batch.drop_column("pause_origin")


_day = sa.table("dose_day", sa.column("id"), sa.column("patient_id"), sa.column("course_id"), sa.column("cycle"),
                sa.column("day"), sa.column("local_date"), sa.column("state"))
_course = sa.table("course", sa.column("id"), sa.column("status"))
_patient = sa.table("patient", sa.column("id"), sa.column("subject_id"), sa.column("status"),
                    sa.column("pause_origin"))
_event = sa.table("dose_event", sa.column("dose_day_id"), sa.column("at", bot.db.types.UTCDateTime()),
                  sa.column("kind"), sa.column("from_state"), sa.column("to_state"), sa.column("late"),
                  sa.column("actor"), sa.column("reason"))
_audit = sa.table("audit_log", sa.column("at", bot.db.types.UTCDateTime()), sa.column("actor_kind"),
                  sa.column("actor_id"), sa.column("action"), sa.column("entity"), sa.column("entity_id"),
                  sa.column("before", sa.JSON()), sa.column("after", sa.JSON()), sa.column("reason"))


def _void(bind, now, day, why: str) -> None:
    bind.execute(sa.update(_day).where(_day.c.id == day.id).values(state="cancelled"))
    bind.execute(sa.insert(_event).values(dose_day_id=day.id, at=now, kind="void", from_state=day.state,
                                          to_state="cancelled", late=False, actor="system:migration", reason=why))
    bind.execute(sa.insert(_audit).values(at=now, actor_kind="system", actor_id="migration", action="dose.voided",
                                          entity="dose_day", entity_id=str(day.id), before={"state": day.state},
                                          after={"state": "cancelled", "cycle": day.cycle, "day": day.day},
                                          reason=why))


def _void_days_of_cancelled_courses(bind) -> None:
    now = datetime.now(timezone.utc)
    rows = bind.execute(sa.select(_day, _course.c.status.label("course_status"))
                        .join(_course, _course.c.id == _day.c.course_id)
                        .where(_day.c.state != "cancelled").order_by(_day.c.id)).all()
    live = []
    for day in rows:
        if day.course_status == "cancelled" and day.state in ("scheduled", "not_reported"):
            _void(bind, now, day, "course was cancelled before this day was answered")
        else:
            live.append(day)
    by_date = defaultdict(list)
    for day in live:
        by_date[(day.patient_id, day.local_date)].append(day)
    for days in by_date.values():
        if len(days) < 2:
            continue
        # Keep the day of an active course (else the newest); the others leave the record of
        # live days, their answers stay in dose_event and this audit row.
        keep = max(days, key=lambda d: (d.course_status == "active", d.id))
        for day in days:
            if day.id != keep.id:
                _void(bind, now, day, f"second dose day on {day.local_date} (dose day {keep.id} kept)")


def _record_pause_origins(bind) -> None:
    paused = bind.execute(sa.select(_patient).where(_patient.c.status == "paused")).all()
    for patient in paused:
        last = bind.execute(sa.select(_audit.c.actor_kind).where(
            _audit.c.action == "patient.paused", _audit.c.entity_id == patient.subject_id)
            .order_by(_audit.c.at.desc()).limit(1)).first()
        origin = "patient" if last is None or last.actor_kind == "patient" else "team"
        bind.execute(sa.update(_patient).where(_patient.c.id == patient.id).values(pause_origin=origin))
