"""Conversation state in the database (a half-done enrolment, a coordinator's open question, …),
so a restart or a second process continues it. One row per account (its key, `channel_user_id`)
and dialog kind; a row
past its expiry is absent, and every kind has an expiry.

    state = await dialogs.get(session, channel_user_id=account.key, kind="enrol", now=now)
    await dialogs.put(session, channel_user_id=account.key, kind="enrol", payload={...}, now=now, ttl=...)
    await dialogs.clear(session, channel_user_id=account.key, kind="enrol")

These three work in the caller's transaction; `remember`, `recall`, `take` and `forget` are the
same for a dialog that is the whole use case (each its own transaction).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db.engine import execute
from bot.db.models import DialogState
from bot.services.runtime import Runtime

# Dialog kinds kept here (enrolment and the symptom note keep theirs in their services), and how
# long each stays open.
COORDINATOR_QUESTION = "coord_question"  # a reason or a date the bot asked a coordinator for
COORDINATOR_QUESTION_TTL = timedelta(minutes=15)  # a stray message later never becomes a withdrawal reason
REMINDER_TIME = "reminder_time"  # /time asked for a new reminder time
REMINDER_TIME_TTL = timedelta(hours=1)
TIME_QUESTION = "enrol_time_msg"  # (chat id, message id) of enrolment's open time question
TIME_QUESTION_TTL = timedelta(hours=24)
LOCALE = "locale"  # a language chosen before enrolment ended (the patient row keeps it after)
LOCALE_TTL = timedelta(days=30)


async def get(session: AsyncSession | AsyncConnection, *, channel_user_id: str, kind: str,
              now: datetime) -> dict[str, Any] | None:
    """(Also on a bare connection: the update gate reads a language with it, cheaply.)"""
    payload = (await execute(session, sa_select(DialogState.payload).where(
        DialogState.channel_user_id == channel_user_id, DialogState.kind == kind,
        DialogState.expires_at > now))).scalar_one_or_none()
    return dict(payload) if payload is not None else None


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


async def open_dialogs(session: AsyncSession, *, channel_user_id: str, now: datetime) -> dict[str, dict[str, Any]]:
    """Every dialog open for this user, by kind (one query: free text goes to one of them)."""
    rows = await session.exec(select(DialogState).where(DialogState.channel_user_id == channel_user_id,
                                                        DialogState.expires_at > now))
    return {row.kind: dict(row.payload) for row in rows}


async def prune(connection: AsyncConnection | AsyncSession, *, before: datetime) -> None:
    """Forget dialogs that expired before `before` (expired ones are already absent to readers)."""
    await execute(connection, delete(DialogState).where(DialogState.expires_at < before))


@dataclass(frozen=True)
class Taken:
    """A dialog taken for an answer: its state, or `lapsed` if it was open but has expired."""

    state: dict[str, Any] | None
    lapsed: bool = False


async def remember(rt: Runtime, *, user: str, kind: str, payload: dict[str, Any], ttl: timedelta) -> None:
    async with rt.session() as session:
        await put(session, channel_user_id=user, kind=kind, payload=payload, now=rt.now(), ttl=ttl)
        await session.commit()


async def recall(rt: Runtime, *, user: str, kind: str) -> dict[str, Any] | None:
    async with rt.session() as session:
        return await get(session, channel_user_id=user, kind=kind, now=rt.now())


async def forget(rt: Runtime, *, user: str, kind: str) -> bool:
    """End the dialog; True if one was open."""
    async with rt.session() as session:
        was_open = await get(session, channel_user_id=user, kind=kind, now=rt.now()) is not None
        await clear(session, channel_user_id=user, kind=kind)
        await session.commit()
    return was_open


async def take(rt: Runtime, *, user: str, kind: str) -> Taken:
    """The dialog's state, once: it is ended in the same transaction, so of two processes that
    receive answers at once only one gets it."""
    async with rt.session() as session:
        result = await session.exec(delete(DialogState).where(DialogState.channel_user_id == user,
                                                              DialogState.kind == kind)
                                    .returning(DialogState.payload, DialogState.expires_at))
        row = result.first()
        await session.commit()
    if row is None:
        return Taken(None)
    if row.expires_at <= rt.now():
        return Taken(None, lapsed=True)
    return Taken(dict(row.payload))


__all__ = ["COORDINATOR_QUESTION", "LOCALE", "REMINDER_TIME", "TIME_QUESTION", "Taken", "clear", "forget", "get",
           "open_dialogs", "prune", "put", "recall", "remember", "take"]
