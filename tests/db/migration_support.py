"""A database at an older revision, for tests of one migration on data the schema before it wrote
(SQLite file, or the run's PostgreSQL database emptied; left at head afterwards)."""

from __future__ import annotations

from contextlib import asynccontextmanager

from sqlalchemy import text

from bot.db.engine import make_engine, normalize_url
from bot.db.migrate import upgrade
from tests.conftest import ON_POSTGRES, TEST_DATABASE_URL


@asynccontextmanager
async def database_at(tmp_path, revision: str):
    if ON_POSTGRES:
        engine = make_engine(normalize_url(TEST_DATABASE_URL))
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    else:
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    await upgrade(engine, revision)
    try:
        yield engine
    finally:
        await upgrade(engine, "head")  # leave the shared PostgreSQL database as the other tests expect it
        await engine.dispose()
