"""Migration 0007 (issue 14, part 4): the family helper table, the patient's helper consent and
who reported a symptom come and go cleanly on a database at 0006, and match the models (SQLite
and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from bot.db.migrate import current_revision, downgrade, upgrade
from tests.db.test_migration_0006 import T, _tables, engine_0005  # noqa: F401 (fixture)


async def _columns(engine, table: str) -> set[str]:
    async with engine.connect() as connection:
        return await connection.run_sync(lambda c: {col["name"] for col in inspect(c).get_columns(table)})


async def test_0007_upgrades_downgrades_and_keeps_helper_ids_unique(engine_0005):
    engine = engine_0005
    await upgrade(engine, "0006")
    assert "helper" not in await _tables(engine)
    await upgrade(engine, "0007_family_helpers")
    assert await current_revision(engine) == "0007_family_helpers"
    insert_helper = ("INSERT INTO helper (helper_id, patient_id, telegram_user_id, chat_id, locale, status, joined_at) "
                     f"VALUES ('H-NJ-001', 1, 42, 42, 'en', 'active', '{T}')")
    async with engine.begin() as connection:
        await connection.execute(text(
            "INSERT INTO patient (id, subject_id, site_id, locale, timezone, reminder_time, status, unreachable, "
            f"created_at, helper_consent_at) VALUES (1, 'NJ-1', 'NJ', 'en', 'Asia/Shanghai', '08:00', 'active', false, "
            f"'{T}', '{T}')"))
        await connection.execute(text(insert_helper))
        await connection.execute(text(
            "INSERT INTO symptom_report (patient_id, reported_at, symptoms, level, helper_id) "
            f"VALUES (1, '{T}', '[]', 'log', 'H-NJ-001')"))
    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(text(insert_helper))
    await downgrade(engine, "0006")
    assert await current_revision(engine) == "0006"
    assert "helper" not in await _tables(engine)
    assert "helper_consent_at" not in await _columns(engine, "patient")
    assert "helper_id" not in await _columns(engine, "symptom_report")

