"""Shared fixtures. The whole suite runs on SQLite by default and on PostgreSQL when
TEST_DATABASE_URL is set (`make test` does both)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.db.engine import is_sqlite, make_engine, normalize_url
from bot.db.migrate import upgrade

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
ON_POSTGRES = bool(TEST_DATABASE_URL) and not is_sqlite(normalize_url(TEST_DATABASE_URL))


def pytest_report_header(config):
    return f"database: {'PostgreSQL ' + TEST_DATABASE_URL if ON_POSTGRES else 'SQLite (embedded)'}"


async def _reset_postgres(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
        await upgrade(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory) -> str:
    """A migrated database: a SQLite file to copy per test, or the PostgreSQL test database."""
    if ON_POSTGRES:
        try:
            asyncio.run(_reset_postgres(TEST_DATABASE_URL))
        except OSError as error:
            pytest.exit(f"PostgreSQL at {TEST_DATABASE_URL} is unreachable: {error}", returncode=3)
        return normalize_url(TEST_DATABASE_URL)
    path = tmp_path_factory.mktemp("template") / "template.db"
    url = f"sqlite+aiosqlite:///{path}"

    async def _migrate():
        engine = make_engine(url)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(_migrate())
    return str(path)


@pytest.fixture
def database_url(migrated_template, tmp_path) -> str:
    """A fresh, migrated, empty database for one test."""
    if ON_POSTGRES:
        return migrated_template
    target = tmp_path / "test.db"
    shutil.copy(migrated_template, target)
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture
async def engine(database_url):
    engine = make_engine(database_url)
    if ON_POSTGRES:
        async with engine.begin() as connection:
            tables = (await connection.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname='public' AND tablename <> 'alembic_version'"
            ))).scalars().all()
            await connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    yield engine
    await engine.dispose()


@pytest.fixture
def example_config_path() -> Path:
    return Path(__file__).resolve().parent.parent / "config.example.toml"


def pytest_configure(config):
    config.addinivalue_line("markers", "postgres_only: runs in the PostgreSQL pass of `make test` only")
    config.addinivalue_line("markers", "sqlite_only: runs in the SQLite pass of `make test` only")


def pytest_collection_modifyitems(config, items):
    """Database-specific tests are deselected (not skipped) in the other pass: `make test` runs
    both passes, so every test runs exactly where it means something."""
    unwanted = "sqlite_only" if ON_POSTGRES else "postgres_only"
    deselected = [item for item in items if item.get_closest_marker(unwanted)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker(unwanted)]


SANDBOX_TOKEN = "123456:SANDBOX-TOKEN"  # bot.sandbox's default: recognizable in any text


@pytest.fixture(autouse=True)
def token_never_logged(caplog):
    """The whole suite doubles as a leak check: the bot token must not appear in any log record
    (message or traceback) produced while a test ran."""
    import logging

    caplog.set_level(logging.INFO)  # httpx logs each request URL (which holds the token) at INFO
    yield
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        assert SANDBOX_TOKEN not in text, f"bot token leaked in a log record from {record.name}"
