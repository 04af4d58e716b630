"""PostgreSQL round trips: a pooled connection idle for a while is pinged before use, and a dead
one is replaced without the caller seeing an error; one reused at once is not pinged (SQLAlchemy's
pool_pre_ping would cost three round trips on every checkout). `Runtime.single` runs each statement
on its own, without BEGIN and COMMIT."""

import pytest
from sqlalchemy import text

from bot.db import engine as engine_module
from bot.config import settings_from_mapping
from bot.db.engine import make_engine
from bot.services.runtime import Runtime

pytestmark = pytest.mark.postgres_only


async def test_an_idle_connection_the_server_dropped_is_replaced_and_a_busy_one_is_not_pinged(
        engine, owner_database_url, monkeypatch):
    pings = []
    real_ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda connection: (pings.append(1), real_ping(connection))[1])

    async def backend() -> int:
        async with engine.connect() as connection:
            return (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()

    first = await backend()
    assert await backend() == first  # the pooled connection, reused at once
    assert pings == []

    owner = make_engine(owner_database_url)
    try:
        async with owner.connect() as connection:  # the server ends it while it sits in the pool
            assert (await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})).scalar_one()
    finally:
        await owner.dispose()

    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # it has been idle "long enough"
    replaced = await backend()
    assert replaced != first
    assert pings == [1]  # the dead one failed its ping; the new one was not pinged


async def test_single_runs_each_statement_in_a_transaction_of_its_own(engine, example_config_path):
    import tomllib

    rt = Runtime(settings_from_mapping(tomllib.loads(example_config_path.read_text("utf-8")), env={}), engine)
    current = text("SELECT txid_current()")
    async with rt.single() as session:
        first, second = (await session.exec(current)).scalar_one(), (await session.exec(current)).scalar_one()
    assert first != second  # no BEGIN: each statement committed on its own
    async with rt.session() as session:  # an ordinary session: one transaction around both
        first, second = (await session.exec(current)).scalar_one(), (await session.exec(current)).scalar_one()
    assert first == second
