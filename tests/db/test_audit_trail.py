"""The audit trail nobody can rewrite: triggers refuse UPDATE, DELETE, TRUNCATE and REPLACE; on
PostgreSQL the bot's runtime role may only INSERT and SELECT; every row is hash-chained and
`verify-audit` finds the first tampered row; strangers cannot grow the trail without bound."""

import asyncio
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from bot.db.audit_chain import STRANGER_ROWS_PER_DAY, verify
from bot.db.engine import make_engine, session_factory
from bot.db.migrate import upgrade
from bot.db.models import AuditLog, StrangerAttempt
from bot.services.audit import audit
from tests.conftest import ON_POSTGRES

UTC = timezone.utc
NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


async def _write(engine, *actions, actor_kind="system", actor_id="test", at=NOW):
    async with session_factory(engine)() as session:
        for action in actions:
            audit(session, at=at, actor_kind=actor_kind, actor_id=actor_id, action=action,
                  after={"note": "一些文字", "n": 1})
        await session.commit()


async def _actions(engine) -> list[str]:
    async with session_factory(engine)() as session:
        return [r.action for r in (await session.exec(select(AuditLog).order_by(AuditLog.id))).all()]


async def _refused(engine, statement: str, match: str) -> None:
    with pytest.raises(DBAPIError, match=match):
        async with engine.begin() as connection:
            await connection.execute(text(statement))


@pytest.fixture
async def owner_engine(engine, owner_database_url):
    owner = make_engine(owner_database_url)
    yield owner
    await owner.dispose()


async def test_owner_cannot_update_delete_or_truncate(engine, owner_engine):
    await _write(engine, "probe")
    statements = ["UPDATE audit_log SET action = 'rewritten'", "DELETE FROM audit_log"]
    if ON_POSTGRES:
        statements.append("TRUNCATE audit_log")
    for statement in statements:
        await _refused(owner_engine, statement, "append-only")
    assert await _actions(engine) == ["probe"]


@pytest.mark.sqlite_only
@pytest.mark.parametrize("statement", [
    "INSERT OR REPLACE INTO audit_log (id, at, actor_kind, actor_id, action, prev_hash, hash) "
    "SELECT id, at, actor_kind, actor_id, 'rewritten', prev_hash, hash FROM audit_log",
    "REPLACE INTO audit_log (id, at, actor_kind, actor_id, action, prev_hash, hash) "
    "SELECT id, at, actor_kind, actor_id, 'rewritten', prev_hash, hash FROM audit_log",
    "INSERT INTO audit_log (id, at, actor_kind, actor_id, action, prev_hash, hash) "
    "SELECT id, at, actor_kind, actor_id, 'rewritten', prev_hash, 'x' FROM audit_log WHERE true "
    "ON CONFLICT (id) DO UPDATE SET action = excluded.action",
    "UPDATE OR REPLACE audit_log SET action = 'rewritten'",
])
async def test_sqlite_replace_and_upsert_are_refused(engine, statement):
    await _write(engine, "probe")
    await _refused(engine, statement, "append-only")
    assert await _actions(engine) == ["probe"]
    assert (await verify(engine)).ok


@pytest.mark.postgres_only
async def test_postgres_upsert_is_refused(engine):
    await _write(engine, "probe")
    await _refused(engine, "INSERT INTO audit_log (id, at, actor_kind, actor_id, action, prev_hash, hash) "
                           "SELECT id, at, actor_kind, actor_id, 'rewritten', prev_hash, 'x' FROM audit_log "
                           "ON CONFLICT (id) DO UPDATE SET action = excluded.action", "append-only|permission denied")
    assert await _actions(engine) == ["probe"]


@pytest.mark.postgres_only
@pytest.mark.parametrize("statement", [
    "UPDATE audit_log SET action = 'rewritten'",
    "DELETE FROM audit_log",
    "TRUNCATE audit_log",
    "DROP TRIGGER audit_log_append_only ON audit_log",
    "DROP TRIGGER audit_log_no_truncate ON audit_log",
    "ALTER TABLE audit_log DISABLE TRIGGER USER",
    "DROP TABLE audit_log",
    "ALTER TABLE audit_log OWNER TO CURRENT_USER",
])
async def test_runtime_role_may_only_insert_and_select(engine, statement):
    """The suite's bot connects as a runtime role with the production grants: it cannot change
    rows, drop or disable the guards, or take the table over."""
    async with engine.connect() as connection:
        assert not (await connection.execute(text(
            "SELECT pg_has_role(current_user, tableowner, 'MEMBER') FROM pg_tables WHERE tablename='audit_log'"
        ))).scalar()
    await _write(engine, "probe")
    await _refused(engine, statement, "permission denied|must be owner")
    assert await _actions(engine) == ["probe"]


@pytest.mark.postgres_only
async def test_print_grants_matches_what_the_suite_runs_as(engine, postgres_run):
    result = subprocess.run([sys.executable, "-m", "bot", "migrate", "--print-grants", "adherence"],
                            capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert 'GRANT SELECT, INSERT ON TABLE audit_log TO "adherence";' in result.stdout
    async with engine.connect() as connection:
        granted = set((await connection.execute(text(
            "SELECT privilege_type FROM information_schema.role_table_grants "
            "WHERE table_name = 'audit_log' AND grantee = current_user"))).scalars())
    assert granted == {"SELECT", "INSERT"}


async def test_rows_are_hash_chained_across_concurrent_writers(engine):
    await asyncio.gather(*(_write(engine, f"w{i}.a", f"w{i}.b") for i in range(12)))
    result = await verify(engine)
    assert result.ok and result.rows == 24, result.problem
    async with session_factory(engine)() as session:
        rows = (await session.exec(select(AuditLog).order_by(AuditLog.id))).all()
    assert rows[0].prev_hash == "" and all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:]))
    assert len({r.hash for r in rows}) == 24


async def test_a_rolled_back_transaction_leaves_no_row_and_no_gap(engine):
    await _write(engine, "first")
    async with session_factory(engine)() as session:
        audit(session, at=NOW, actor_kind="system", actor_id="test", action="never")
        await session.rollback()
    await _write(engine, "second")
    assert await _actions(engine) == ["first", "second"]
    assert (await verify(engine)).ok


def _cli_verify(url: str, tmp_path) -> subprocess.CompletedProcess:
    from tests.test_config import _deployable, _toml
    from pathlib import Path

    data = _deployable(Path(__file__).resolve().parents[2] / "config.example.toml")
    data["database"]["url"] = url
    config = tmp_path / "config.toml"
    config.write_text(_toml(data), "utf-8")
    return subprocess.run([sys.executable, "-m", "bot", "verify-audit", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)


async def _lift_guards(owner_engine, connection) -> None:
    if ON_POSTGRES:
        await connection.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
    else:
        for trigger in ("audit_log_no_update", "audit_log_no_delete"):
            await connection.execute(text(f"DROP TRIGGER {trigger}"))


async def test_verify_audit_reports_an_edited_row(engine, owner_engine, database_url, tmp_path):
    await _write(engine, "a", "b", "c", "d")
    ok = await asyncio.to_thread(_cli_verify, database_url, tmp_path)
    assert ok.returncode == 0 and "audit trail OK: 4 rows" in ok.stdout, ok.stderr
    async with owner_engine.begin() as connection:  # an attacker with the owner's powers
        await _lift_guards(owner_engine, connection)
        third = (await connection.execute(text("SELECT id FROM audit_log ORDER BY id LIMIT 1 OFFSET 2"))).scalar()
        await connection.execute(text("UPDATE audit_log SET reason = 'nothing happened' WHERE id = :id"), {"id": third})
    broken = await asyncio.to_thread(_cli_verify, database_url, tmp_path)
    assert broken.returncode == 1
    assert f"BROKEN at row {third}" in broken.stderr and "edited" in broken.stderr


async def test_verify_audit_reports_a_deleted_row(engine, owner_engine):
    await _write(engine, "a", "b", "c")
    async with owner_engine.begin() as connection:
        await _lift_guards(owner_engine, connection)
        ids = (await connection.execute(text("SELECT id FROM audit_log ORDER BY id"))).scalars().all()
        await connection.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": ids[1]})
    result = await verify(engine)
    assert not result.ok and result.broken_at == ids[2] and "deleted" in result.problem


async def test_strangers_are_counted_not_logged_past_a_threshold(engine):
    for minute in range(20):
        await _write(engine, "callback.rejected", actor_kind="user", actor_id="telegram:666",
                     at=NOW + timedelta(minutes=minute))
    await _write(engine, "access.refused", actor_kind="user", actor_id="telegram:777")
    await _write(engine, "dose.taken", actor_kind="patient", actor_id=42)
    actions = await _actions(engine)
    assert actions.count("callback.rejected") == STRANGER_ROWS_PER_DAY
    assert actions.count("audit.rate_limited") == 1
    assert actions.count("access.refused") == 1 and actions.count("dose.taken") == 1
    async with session_factory(engine)() as session:
        counter = (await session.exec(select(StrangerAttempt).where(StrangerAttempt.account == "telegram:666"))).one()
    assert counter.count == 20 and counter.last_at == NOW + timedelta(minutes=19)
    await _write(engine, "callback.rejected", actor_kind="user", actor_id="telegram:666", at=NOW + timedelta(days=1))
    assert (await _actions(engine)).count("callback.rejected") == STRANGER_ROWS_PER_DAY + 1  # a new day
    assert (await verify(engine)).ok


@pytest.mark.sqlite_only
async def test_migration_chains_rows_written_before_it(tmp_path):
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        await upgrade(engine, "0002")
        async with engine.begin() as connection:
            for action in ("old.a", "old.b"):
                await connection.execute(text(
                    "INSERT INTO audit_log (at, actor_kind, actor_id, action, after) "
                    "VALUES ('2026-11-01 08:00:00.000000', 'system', 'x', :action, '{\"k\": \"值\"}')"),
                    {"action": action})
        await upgrade(engine)
        await _write(engine, "new")
        result = await verify(engine)
        assert result.ok and result.rows == 3, result.problem
        await _refused(engine, "UPDATE audit_log SET action = 'x'", "append-only")
    finally:
        await engine.dispose()


async def test_rows_added_directly_in_a_local_zone_still_verify(engine):
    from zoneinfo import ZoneInfo

    async with session_factory(engine)() as session:
        session.add(AuditLog(at=NOW.astimezone(ZoneInfo("Asia/Shanghai")), actor_kind="system", actor_id="12345",
                             action="probe", entity="patient", entity_id="7", update_id=99,
                             after={"b": [1, 2.5, None], "a": "研究药物"}))
        await session.commit()
    assert (await verify(engine)).ok
