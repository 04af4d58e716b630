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
