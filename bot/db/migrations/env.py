"""Alembic environment.

Used two ways: programmatically by `adherence-bot migrate` / tests, which pass an open
synchronous connection in `config.attributes["connection"]` (run inside
`AsyncConnection.run_sync`), or from the `alembic` command line for developers, which builds
an async engine from `sqlalchemy.url`.
"""

import asyncio

from alembic import context
from sqlmodel import SQLModel

import bot.db.models  # noqa: F401  (registers the tables)
from bot.db.engine import make_engine

target_metadata = SQLModel.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_async(context.config.get_main_option("sqlalchemy.url")))
