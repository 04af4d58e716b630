"""Migration 0008 (issue 13): outbox rows, delivered alert copies and unreachable staff recipients
move from a Telegram chat id to (channel, address) without losing a row, on a database populated
by the schema before it (SQLite and PostgreSQL); the schema then matches the models, and going
back restores the chat ids."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from bot.db.migrate import current_revision, downgrade, upgrade
from tests.db.migration_support import database_at

T = "2026-12-01 00:00:00"
BIG_CHAT = 7_000_000_123  # Telegram ids exceed 32 bits
GROUP_CHAT = -1001234567890


@pytest.fixture
async def engine_0006(tmp_path):
    async with database_at(tmp_path, "0006") as engine:
        yield engine


async def _rows(engine, sql: str) -> list[tuple]:
    async with engine.connect() as connection:
        return [tuple(r) for r in (await connection.execute(text(sql))).all()]


async def _populate_0006(engine) -> None:
    async with engine.begin() as connection:
        for statement in [
            f"INSERT INTO patient (id, subject_id, site_id, locale, timezone, reminder_time, status, unreachable, "
            f"chat_id, telegram_user_id, created_at) VALUES (1, 'NJ-1', 'NJ', 'en', 'Asia/Shanghai', '08:00', "
            f"'active', false, {BIG_CHAT}, {BIG_CHAT}, '{T}')",
            f"INSERT INTO alert (id, site_id, patient_id, kind, level, details, created_at, repeats) "
            f"VALUES (1, 'NJ', 1, 'emergency_symptom', 'emergency', '{{}}', '{T}', 0)",
            f"INSERT INTO outbox (id, kind, lane, chat_id, patient_id, due_at, state, priority, attempts, resends, "
            f"payload, dedupe_key, created_at, message_id) VALUES (1, 'reminder', 'normal', {BIG_CHAT}, 1, '{T}', "
            f"'sent', 1, 1, 0, '{{}}', 'reminder:1', '{T}', 55)",
            f"INSERT INTO outbox (id, kind, lane, chat_id, alert_id, due_at, state, priority, attempts, resends, "
            f"payload, dedupe_key, created_at) VALUES (2, 'alert', 'alert', {GROUP_CHAT}, 1, '{T}', 'pending', 0, "
            f"0, 0, '{{\"round\": 0}}', 'alert:1:{GROUP_CHAT}:0', '{T}')",
            f"INSERT INTO alert_message (id, alert_id, chat_id, message_id, sent_at) "
            f"VALUES (1, 1, {GROUP_CHAT}, 77, '{T}')",
            f"INSERT INTO unreachable_recipient (chat_id, site_id, since, error) "
            f"VALUES ({BIG_CHAT}, 'NJ', '{T}', 'Forbidden: bot was blocked by the user')",
        ]:
            await connection.execute(text(statement))


async def test_0008_moves_every_recipient_to_channel_and_address_and_back(engine_0006):
    engine = engine_0006
    await _populate_0006(engine)
    await upgrade(engine, "0008_channels")
    assert await current_revision(engine) == "0008_channels"  # the schema at head: tests/db/test_database.py
    assert await _rows(engine, "SELECT id, channel, address, state, message_id, dedupe_key FROM outbox ORDER BY id") \
        == [(1, "telegram", str(BIG_CHAT), "sent", 55, "reminder:1"),
            (2, "telegram", str(GROUP_CHAT), "pending", None, f"alert:1:{GROUP_CHAT}:0")]
    assert await _rows(engine, "SELECT alert_id, channel, address, message_id FROM alert_message") == \
        [(1, "telegram", str(GROUP_CHAT), 77)]
    assert await _rows(engine, "SELECT channel, address, site_id, error FROM unreachable_recipient") == \
        [("telegram", str(BIG_CHAT), "NJ", "Forbidden: bot was blocked by the user")]

    # The new schema holds a staff mailbox; one address per channel is unique.
    async with engine.begin() as connection:
        await connection.execute(text(
            f"INSERT INTO unreachable_recipient (channel, address, site_id, since, error) "
            f"VALUES ('email', 'nurse@example.org', 'NJ', '{T}', '550 no such mailbox')"))
        await connection.execute(text(
            f"INSERT INTO outbox (id, kind, lane, channel, address, alert_id, due_at, state, priority, attempts, "
            f"resends, payload, created_at) VALUES (3, 'alert', 'alert', 'email', 'nurse@example.org', 1, '{T}', "
            f"'sent', 0, 1, 0, '{{}}', '{T}')"))

    await downgrade(engine, "0006")
    assert await current_revision(engine) == "0006"
    assert await _rows(engine, "SELECT id, chat_id, state FROM outbox ORDER BY id") == \
        [(1, BIG_CHAT, "sent"), (2, GROUP_CHAT, "pending")]  # the mail row cannot be addressed there
    assert await _rows(engine, "SELECT alert_id, chat_id, message_id FROM alert_message") == [(1, GROUP_CHAT, 77)]
    assert await _rows(engine, "SELECT chat_id, site_id FROM unreachable_recipient") == [(BIG_CHAT, "NJ")]
