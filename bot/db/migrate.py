"""Alembic, driven from code: `adherence-bot migrate`, the demo and the tests all use this."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

import bot.db.models  # noqa: F401

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url)
    return config


async def _run(engine: AsyncEngine, step, revision: str) -> None:
    """An Alembic command (`command.upgrade` / `command.downgrade`) on the engine's connection."""
    def _step(sync_connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = sync_connection
        step(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(_step)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    await _run(engine, command.upgrade, revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    await _run(engine, command.downgrade, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


async def schema_differences(engine: AsyncEngine) -> list:
    """What autogenerate would change: empty when the models and migrations agree."""

    def _compare(sync_connection):
        context = MigrationContext.configure(sync_connection, opts={"compare_type": True})
        return compare_metadata(context, SQLModel.metadata)

    async with engine.connect() as connection:
        return await connection.run_sync(_compare)
