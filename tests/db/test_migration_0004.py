"""Migration 0004 on a database filled by the previous schema: days of cancelled courses are
voided, a date with two live days keeps one, pause origins come from the audit log, and the
one-live-day-per-date index holds afterwards (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timezone

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from alembic.script import ScriptDirectory
from bot.db.migrate import alembic_config, current_revision, schema_differences, upgrade
from tests.conftest import ON_POSTGRES
from tests.db.migration_support import database_at

UTC = timezone.utc
T = "2026-12-01 00:00:00"


@pytest.fixture
async def old_engine(tmp_path):
    """An empty database at revision 0002 (the schema before this change)."""
    async with database_at(tmp_path, "0002") as engine:
        yield engine


def _day(id_, patient, course, cycle, day, local_date, state):
    return (f"INSERT INTO dose_day (id, patient_id, course_id, cycle, day, local_date, due_at, closes_at, late_until, "
            f"state, late, snoozes) VALUES ({id_}, {patient}, {course}, {cycle}, {day}, '{local_date}', '{T}', '{T}', "
            f"'{T}', '{state}', false, 0)")


async def test_upgrade_voids_cancelled_days_and_records_pause_origins(old_engine):
    statements = [
        f"INSERT INTO patient (id, subject_id, site_id, locale, timezone, reminder_time, status, unreachable, "
        f"created_at) VALUES (1, 'NJ-1', 'NJ', 'en', 'Asia/Shanghai', '08:00', 'paused', false, '{T}')",
        f"INSERT INTO patient (id, subject_id, site_id, locale, timezone, reminder_time, status, unreachable, "
        f"created_at) VALUES (2, 'NJ-2', 'NJ', 'en', 'Asia/Shanghai', '08:00', 'paused', false, '{T}')",
        f"INSERT INTO audit_log (at, actor_kind, actor_id, action, entity, entity_id) VALUES "
        f"('{T}', 'coordinator', '100000001', 'patient.paused', 'patient', 'NJ-1')",
        f"INSERT INTO course (id, patient_id, cycle, chemo_end, first_day, last_day, status, source, confirmed, "
        f"created_at, created_by) VALUES (1, 1, 1, '2026-12-01', '2026-12-02', '2026-12-15', 'cancelled', 'cli', "
        f"true, '{T}', 'operator:cli')",
        f"INSERT INTO course (id, patient_id, cycle, chemo_end, first_day, last_day, status, source, confirmed, "
        f"created_at, created_by) VALUES (2, 1, 2, '2026-12-01', '2026-12-02', '2026-12-15', 'active', 'cli', "
        f"true, '{T}', 'operator:cli')",
        _day(1, 1, 1, 1, 1, "2026-12-02", "taken"),
        _day(2, 1, 1, 1, 2, "2026-12-03", "scheduled"),
        _day(3, 1, 1, 1, 3, "2026-12-04", "not_reported"),
        _day(4, 1, 2, 2, 1, "2026-12-02", "taken"),  # the bug: two "taken" records for one date
        _day(5, 1, 2, 2, 2, "2026-12-03", "scheduled"),
    ]
    async with old_engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))
        if ON_POSTGRES:
            for table in ("patient", "course", "dose_day"):
                await connection.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))

    await upgrade(old_engine, "head")
    assert (await current_revision(old_engine)) == ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert await schema_differences(old_engine) == []

    async with old_engine.connect() as connection:
        states = dict((await connection.execute(text("SELECT id, state FROM dose_day ORDER BY id"))).all())
        assert states == {1: "cancelled", 2: "cancelled", 3: "cancelled", 4: "taken", 5: "scheduled"}
        events = (await connection.execute(text(
            "SELECT dose_day_id, kind, from_state, to_state FROM dose_event ORDER BY dose_day_id"))).all()
        assert [tuple(e) for e in events] == [(1, "void", "taken", "cancelled"), (2, "void", "scheduled", "cancelled"),
                                              (3, "void", "not_reported", "cancelled")]
        voided = (await connection.execute(text(
            "SELECT entity_id FROM audit_log WHERE action = 'dose.voided' ORDER BY id"))).scalars().all()
        assert sorted(voided) == ["1", "2", "3"]
        if not ON_POSTGRES:  # the declared types were widened in place: the file is sound
            assert (await connection.execute(text("PRAGMA integrity_check"))).scalar() == "ok"
            assert (await connection.execute(text("PRAGMA foreign_key_check"))).all() == []
        origins = dict((await connection.execute(text("SELECT subject_id, pause_origin FROM patient"))).all())
        assert origins == {"NJ-1": "team", "NJ-2": "patient"}
        flags = (await connection.execute(text("SELECT DISTINCT out_of_window FROM dose_day"))).scalars().all()
        assert [bool(f) for f in flags] == [False]

    with pytest.raises(IntegrityError):  # one live day per patient and date, enforced by the database
        async with old_engine.begin() as connection:
            await connection.execute(text(_day(6, 1, 2, 2, 9, "2026-12-03", "scheduled")))
    async with old_engine.begin() as connection:  # a cancelled one on that date is allowed
        await connection.execute(text(_day(7, 1, 2, 2, 10, "2026-12-03", "cancelled")))
