"""Migration 0010 (issue 13): patients, helpers, invitations, acknowledgements and strangers'
counters move from Telegram ids to channel-neutral accounts without losing a value, on a database
populated by the schema before it (SQLite and PostgreSQL); audit rows written before stay as they
are and the hash chain still verifies; going back restores the integers."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from sqlalchemy import text

from bot.db.audit_chain import row_hash, verify
from bot.db.engine import session_factory
from bot.db.migrate import current_revision, downgrade, schema_differences, upgrade
from bot.services.audit import audit
from tests.db.migration_support import database_at

T = "2026-12-01 00:00:00"
AT = datetime(2026, 12, 1, tzinfo=timezone.utc)
BIG_USER = 7_000_000_123  # Telegram ids exceed 32 bits
HELPER_USER = 8_100_000_001
STAFF = 7501


@pytest.fixture
async def engine_0009(tmp_path):
    async with database_at(tmp_path, "0009_dialogs") as engine:
        yield engine


async def _rows(engine, sql: str) -> list[tuple]:
    async with engine.connect() as connection:
        return [tuple(r) for r in (await connection.execute(text(sql))).all()]


def _audit_insert(prev: str, *, actor_kind: str, actor_id: str, action: str, after: dict | None):
    row = SimpleNamespace(at=AT, actor_kind=actor_kind, actor_id=actor_id, action=action, entity="patient",
                          entity_id="NJ-1", before=None, after=after, reason=None, update_id=None)
    digest = row_hash(prev, row)
    after_sql = "NULL" if after is None else f"'{json.dumps(after)}'"
    # No explicit id: PostgreSQL's sequence must move, for the row the ORM chains on afterwards.
    return (f"INSERT INTO audit_log (at, actor_kind, actor_id, action, entity, entity_id, after, prev_hash, hash) "
            f"VALUES ('{T}', '{actor_kind}', '{actor_id}', '{action}', 'patient', 'NJ-1', {after_sql}, "
            f"'{prev}', '{digest}')"), digest


async def _populate_0009(engine) -> None:
    first, first_hash = _audit_insert("", actor_kind="patient", actor_id="NJ-1", action="patient.enrolled",
                                      after={"telegram_user_id": BIG_USER, "site_id": "NJ"})
    second, _ = _audit_insert(first_hash, actor_kind="user", actor_id=str(HELPER_USER), action="helper.declined",
                              after=None)
    async with engine.begin() as connection:
        for statement in [
            f"INSERT INTO patient (id, subject_id, site_id, locale, timezone, reminder_time, status, unreachable, "
            f"chat_id, telegram_user_id, created_at) VALUES (1, 'NJ-1', 'NJ', 'en', 'Asia/Shanghai', '08:00', "
            f"'active', false, {BIG_USER}, {BIG_USER}, '{T}')",
            f"INSERT INTO patient (id, subject_id, site_id, locale, timezone, reminder_time, status, unreachable, "
            f"created_at) VALUES (2, 'NJ-2', 'NJ', 'zh_Hans', 'Asia/Shanghai', '08:00', 'withdrawn', false, '{T}')",
            f"INSERT INTO invitation (id, token_hash, site_id, subject_id, purpose, created_by, created_at, expires_at, "
            f"used_at, used_by_telegram_id) VALUES (1, 'h1', 'NJ', 'NJ-1', 'enrol', 'operator:cli', '{T}', '{T}', "
            f"'{T}', {BIG_USER})",
            f"INSERT INTO invitation (id, token_hash, site_id, subject_id, purpose, created_by, created_at, expires_at) "
            f"VALUES (2, 'h2', 'NJ', 'NJ-1', 'helper', 'operator:cli', '{T}', '{T}')",
            f"INSERT INTO helper (id, helper_id, patient_id, telegram_user_id, chat_id, locale, status, invitation_id, "
            f"joined_at) VALUES (1, 'H-NJ-001', 1, {HELPER_USER}, {HELPER_USER}, 'en', 'active', 2, '{T}')",
            f"INSERT INTO alert (id, site_id, patient_id, kind, level, details, created_at, repeats, acknowledged_at, "
            f"acknowledged_by) VALUES (1, 'NJ', 1, 'emergency_symptom', 'emergency', '{{}}', '{T}', 0, '{T}', {STAFF})",
            f"INSERT INTO alert (id, site_id, patient_id, kind, level, details, created_at, repeats) "
            f"VALUES (2, 'NJ', 1, 'patient_message', 'info', '{{}}', '{T}', 0)",
            f"INSERT INTO patient_message (id, patient_id, at, direction, kind, level, matched, author, "
            f"telegram_message_id, alert_id) VALUES (1, 1, '{T}', 'from_patient', 'voice', 'info', '[]', 'NJ-1', "
            f"9000000001, 2)",
            f"INSERT INTO stranger_attempt (telegram_id, action, day, count, last_at) "
            f"VALUES ('{HELPER_USER}', 'enrol.token_rejected', '2026-12-01', 4, '{T}')",
            first, second,
        ]:
            await connection.execute(text(statement))


async def test_0010_moves_every_identity_to_an_account_and_back(engine_0009):
    engine = engine_0009
    await _populate_0009(engine)
    before_chain = await verify(engine)
    assert before_chain.ok and before_chain.rows == 2
    hashes = await _rows(engine, "SELECT id, actor_id, prev_hash, hash FROM audit_log ORDER BY id")
    assert hashes[1][1] == str(HELPER_USER)

    await upgrade(engine, "0010_accounts")
    assert await current_revision(engine) == "0010_accounts"
    await upgrade(engine, "head")  # and on to head (0011 adds indexes only): the models' schema
    assert await schema_differences(engine) == []
    assert await _rows(engine, "SELECT id, channel, account, address, status FROM patient ORDER BY id") == \
        [(1, "telegram", str(BIG_USER), str(BIG_USER), "active"), (2, "telegram", None, None, "withdrawn")]
    assert await _rows(engine, "SELECT helper_id, channel, account, address, invitation_id FROM helper") == \
        [("H-NJ-001", "telegram", str(HELPER_USER), str(HELPER_USER), 2)]
    assert await _rows(engine, "SELECT id, used_by_account FROM invitation ORDER BY id") == \
        [(1, f"telegram:{BIG_USER}"), (2, None)]
    assert await _rows(engine, "SELECT id, acknowledged_by FROM alert ORDER BY id") == \
        [(1, f"telegram:{STAFF}"), (2, None)]
    assert await _rows(engine, "SELECT id, channel_message_id, alert_id FROM patient_message") == [(1, 9000000001, 2)]
    assert await _rows(engine, "SELECT account, action, count FROM stranger_attempt") == \
        [(f"telegram:{HELPER_USER}", "enrol.token_rejected", 4)]

    # The audit rows are as they were (bare ids included), the chain verifies, and the ORM keeps
    # chaining onto it.
    assert await _rows(engine, "SELECT id, actor_id, prev_hash, hash FROM audit_log ORDER BY id") == hashes
    after_upgrade = await verify(engine)
    assert after_upgrade.ok and after_upgrade.head == before_chain.head
    async with session_factory(engine)() as session:
        audit(session, at=AT, actor_kind="user", actor_id=f"telegram:{HELPER_USER}", action="helper.declined")
        await session.commit()
    chained = await verify(engine)
    assert chained.ok and chained.rows == 3

    # One more person on another channel: the new schema holds them.
    async with engine.begin() as connection:
        await connection.execute(text(
            f"INSERT INTO invitation (id, token_hash, site_id, subject_id, purpose, created_by, created_at, "
            f"expires_at, used_at, used_by_account) VALUES (3, 'h3', 'NJ', 'NJ-1', 'helper', 'operator:cli', '{T}', "
            f"'{T}', '{T}', 'email:daughter@example.org')"))

    await downgrade(engine, "0009_dialogs")
    assert await current_revision(engine) == "0009_dialogs"
    assert await _rows(engine, "SELECT id, telegram_user_id, chat_id FROM patient ORDER BY id") == \
        [(1, BIG_USER, BIG_USER), (2, None, None)]
    assert await _rows(engine, "SELECT helper_id, telegram_user_id, chat_id FROM helper") == \
        [("H-NJ-001", HELPER_USER, HELPER_USER)]
    assert await _rows(engine, "SELECT id, used_by_telegram_id FROM invitation ORDER BY id") == \
        [(1, BIG_USER), (2, None), (3, None)]  # the mail account has no Telegram id
    assert await _rows(engine, "SELECT id, acknowledged_by FROM alert ORDER BY id") == [(1, STAFF), (2, None)]
    assert await _rows(engine, "SELECT telegram_message_id FROM patient_message") == [(9000000001,)]
    assert await _rows(engine, "SELECT telegram_id, count FROM stranger_attempt") == [(str(HELPER_USER), 4)]
    assert await _rows(engine, "SELECT COUNT(*) FROM coordinator") == [(0,)]
    assert (await verify(engine)).ok


async def test_0010_refuses_to_drop_a_coordinator_table_someone_filled(engine_0009):
    async with engine_0009.begin() as connection:
        await connection.execute(text(
            f"INSERT INTO coordinator (id, telegram_id, site_id, role, locale, active, created_at) "
            f"VALUES (1, {STAFF}, 'NJ', 'coordinator', 'en', true, '{T}')"))
    with pytest.raises(Exception, match="coordinator table has rows"):
        await upgrade(engine_0009, "0010_accounts")
    assert await current_revision(engine_0009) == "0009_dialogs"
    async with engine_0009.begin() as connection:
        await connection.execute(text("DELETE FROM coordinator"))
