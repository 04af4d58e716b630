"""A database at an older revision, for tests of one migration on data the schema before it wrote:
a SQLite file, or on the PostgreSQL pass a database of its own on TEST_DATABASE_URL's server,
created for the test and dropped after it. Never the database that URL names: other runs on the
same server use it as their door too, and two runs' migration tests must not meet there."""

from __future__ import annotations

from contextlib import asynccontextmanager

from sqlalchemy.engine import make_url

from bot.db.engine import make_engine, normalize_url
from bot.db.migrate import upgrade
from tests.conftest import ON_POSTGRES, TEST_DATABASE_URL, _admin, _unique_name


@asynccontextmanager
async def database_at(tmp_path, revision: str):
    name = None
    if ON_POSTGRES:
        door, name = normalize_url(TEST_DATABASE_URL), _unique_name("adherence_migration")
        await _admin(door, f'CREATE DATABASE "{name}"')
        engine = make_engine(make_url(door).set(database=name).render_as_string(hide_password=False))
    else:
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        await upgrade(engine, revision)
        yield engine
        await upgrade(engine, "head")  # the chain still runs to head from wherever the test left it
    finally:
        await engine.dispose()
        if name is not None:
            await _admin(door, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
