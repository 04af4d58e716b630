"""Conversation state in the database (a half-done enrolment, …), so a restart or a second
process continues it. One row per channel user and dialog kind; a row past its expiry is absent.

    state = await dialogs.get(session, channel_user_id="telegram:42", kind="enrol", now=now)
    await dialogs.put(session, channel_user_id="telegram:42", kind="enrol", payload={...}, now=now, ttl=...)
    await dialogs.clear(session, channel_user_id="telegram:42", kind="enrol")

All three work in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db.models import DialogState


def telegram_user(user_id: int) -> str:
    """The channel user id of a Telegram user (other channels use their own prefix)."""
    return f"telegram:{user_id}"


async def get(session: AsyncSession, *, channel_user_id: str, kind: str, now: datetime) -> dict[str, Any] | None:
    row = await session.get(DialogState, (channel_user_id, kind), populate_existing=True)
    if row is None or row.expires_at <= now:
        return None
    return dict(row.payload)


async def put(session: AsyncSession, *, channel_user_id: str, kind: str, payload: dict[str, Any], now: datetime,
              ttl: timedelta) -> None:
    """Create or replace the dialog's state (an upsert: safe when two updates race)."""
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    values = dict(channel_user_id=channel_user_id, kind=kind, payload=payload, expires_at=now + ttl, updated_at=now)
    statement = insert(DialogState).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["channel_user_id", "kind"],
        set_={"payload": statement.excluded.payload, "expires_at": statement.excluded.expires_at,
              "updated_at": statement.excluded.updated_at})
    await session.exec(statement)


async def clear(session: AsyncSession, *, channel_user_id: str, kind: str) -> None:
    await session.exec(delete(DialogState).where(DialogState.channel_user_id == channel_user_id,
                                                 DialogState.kind == kind))


__all__ = ["clear", "get", "put", "telegram_user"]
