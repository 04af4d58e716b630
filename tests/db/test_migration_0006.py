"""Migration 0006 (issue 14): the prohibited-medicine answers table comes and goes cleanly on a
database at 0005, matches the models, and keeps one answer per course and check point
(SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from bot.db.migrate import current_revision, downgrade, upgrade
from tests.db.migration_support import database_at

T = "2026-12-01 00:00:00"


@pytest.fixture
async def engine_0005(tmp_path):
    async with database_at(tmp_path, "0005") as engine:
        yield engine


async def _tables(engine) -> set[str]:
    async with engine.connect() as connection:
        return await connection.run_sync(lambda c: set(__import__("sqlalchemy").inspect(c).get_table_names()))


async def test_0006_upgrades_downgrades_and_keeps_one_answer_per_check(engine_0005):
    engine = engine_0005
    assert "conmed_report" not in await _tables(engine)
    await upgrade(engine, "0006")
    assert await current_revision(engine) == "0006"  # the schema at head: tests/db/test_database.py
    async with engine.begin() as connection:
        for statement in [
            f"INSERT INTO patient (id, subject_id, site_id, locale, timezone, reminder_time, status, unreachable, "
            f"created_at) VALUES (1, 'NJ-1', 'NJ', 'en', 'Asia/Shanghai', '08:00', 'active', false, '{T}')",
            f"INSERT INTO course (id, patient_id, cycle, chemo_end, first_day, last_day, status, source, confirmed, "
            f"created_at, created_by) VALUES (1, 1, 1, '2026-12-01', '2026-12-02', '2026-12-15', 'active', 'cli', "
            f"true, '{T}', 'operator:cli')",
            f"INSERT INTO conmed_report (patient_id, course_id, cycle, check_point, answered_at, answer, category, "
            f"reported_by) VALUES (1, 1, 1, 'start', '{T}', 'yes', 'tcm', 'NJ-1')",
        ]:
            await connection.execute(text(statement))
    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(text(
                f"INSERT INTO conmed_report (patient_id, course_id, cycle, check_point, answered_at, answer, "
                f"reported_by) VALUES (1, 1, 1, 'start', '{T}', 'no', 'NJ-1')"))
    await downgrade(engine, "0005")
    assert await current_revision(engine) == "0005"
    assert "conmed_report" not in await _tables(engine)
    assert "course" in await _tables(engine)
