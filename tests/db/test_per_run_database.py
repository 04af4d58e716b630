"""The PostgreSQL pass runs in a database it created for this run, never in the one
TEST_DATABASE_URL names, and as a runtime role, not as the owner."""

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.conftest import TEST_DATABASE_URL, _create_postgres_run, _drop_postgres_run

pytestmark = pytest.mark.postgres_only


async def test_the_run_has_its_own_database_and_role(engine, postgres_run):
    named = make_url(TEST_DATABASE_URL).database
    async with engine.connect() as connection:
        database, user = (await connection.execute(text("SELECT current_database(), current_user"))).one()
    assert database == postgres_run.name != named and database.startswith("adherence_test_")
    assert user == postgres_run.runtime_role != make_url(TEST_DATABASE_URL).username


async def test_another_run_gets_another_database_and_leaves_nothing_behind(postgres_run):
    other = await _create_postgres_run()
    try:
        assert other.name != postgres_run.name and other.runtime_role != postgres_run.runtime_role
    finally:
        await _drop_postgres_run(other)
    import asyncpg

    door = await asyncpg.connect(TEST_DATABASE_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        assert not await door.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", other.name)
        assert not await door.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1", other.runtime_role)
    finally:
        await door.close()


async def test_start_up_warns_only_when_the_bot_role_owns_the_audit_trail(engine, owner_database_url):
    from bot.db.engine import make_engine
    from bot.db.roles import audit_guard_problem

    assert await audit_guard_problem(engine) is None  # the runtime role, as the suite runs the bot
    owner = make_engine(owner_database_url)
    try:
        problem = await audit_guard_problem(owner)
    finally:
        await owner.dispose()
    assert problem and "migrate_url" in problem


async def test_each_test_gets_the_database_empty_with_its_ids_restarted(engine, database_url, owner_database_url):
    """What the engine fixture does between tests (only the tables that hold rows are emptied):
    every table empty, every id sequence restarted, the schema version kept, the audit guard back."""
    from bot.db.engine import make_engine
    from bot.services.clock import FakeClock
    from bot.services.runtime import Runtime
    from tests.conftest import _empty_postgres
    from tests.services.conftest import START, World, service_settings

    clock = FakeClock(START)
    world = World(Runtime(service_settings(database_url), engine, clock), clock)
    await world.course(await world.enrol())
    owner = make_engine(owner_database_url)
    try:
        async with owner.begin() as connection:
            tables = (await connection.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname='public' "
                "AND tablename NOT IN ('alembic_version', 'audit_head')"))).scalars().all()
            # A sequence advanced without a row (as by a rolled-back insert) into a table left empty.
            await connection.execute(text("SELECT nextval(pg_get_serial_sequence('visit', 'id'))"))
        counts = await _row_counts(owner, tables)
        assert {"patient", "invitation", "course", "dose_day", "audit_log"} <= {t for t, n in counts.items() if n}
        assert counts["visit"] == 0

        await _empty_postgres(owner_database_url)

        assert set((await _row_counts(owner, tables)).values()) == {0}
        async with owner.connect() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM alembic_version"))).scalar_one() == 1
            for table in ("patient", "audit_log", "visit", "dose_day"):
                next_id = (await connection.execute(text(
                    f"SELECT nextval(pg_get_serial_sequence('{table}', 'id'))"))).scalar_one()
                assert next_id == 1, table
        with pytest.raises(Exception, match="append-only"):
            async with owner.begin() as connection:  # the audit guard is on again, even for the owner
                await connection.execute(text("TRUNCATE audit_log"))
    finally:
        await owner.dispose()


async def _row_counts(engine, tables) -> dict[str, int]:
    async with engine.connect() as connection:
        return {table: (await connection.execute(text(f'SELECT count(*) FROM "{table}"'))).scalar_one()
                for table in tables}
