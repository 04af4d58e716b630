"""Which incoming updates some process has already taken on, in the database, so a redelivered
update (a channel retries a webhook it did not see answered) is handled once across every
process. Rows older than two days are pruned: a channel keeps an update for at most a day."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db.engine import execute
from bot.db.models import ProcessedUpdate
from bot.services import dialogs

KEEP = timedelta(days=2)
PRUNE_EVERY = 256  # prune when an update id is a multiple of this: no timer, no extra process


async def first_time(connection: AsyncConnection | AsyncSession, *, channel: str, update_id: int,
                     now: datetime) -> bool:
    """Record the update; False if any process recorded it before (the first insert wins). Core
    statements, so it runs on a bare connection: this is paid once per incoming update."""
    dialect = (connection.bind if isinstance(connection, AsyncSession) else connection).dialect
    insert = pg_insert if dialect.name == "postgresql" else sqlite_insert
    result = await execute(connection, insert(ProcessedUpdate).values(channel=channel, update_id=update_id, seen_at=now)
                           .on_conflict_do_nothing(index_elements=["channel", "update_id"]))
    if update_id % PRUNE_EVERY == 0:
        await execute(connection, delete(ProcessedUpdate).where(ProcessedUpdate.seen_at < now - KEEP))
        await dialogs.prune(connection, before=now - KEEP)
    return result.rowcount == 1
