"""Queueing messages: every message the bot sends on its own initiative is an outbox row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.channels.port import Recipient
from bot.db.models import Outbox
from bot.domain.outbox import Lane, OutboxState

ALERT_LANE, NORMAL_LANE = Lane.ALERT, Lane.NORMAL
QUEUED = "queued_for_scheduler"  # session.info key: this transaction queued work (see `queued_work`)


def mark_queued(session: AsyncSession) -> None:
    """This transaction queued work for the scheduler (an outbox row, an alert with its
    repeat and escalation instants), so the scheduler must be woken once it commits."""
    session.info[QUEUED] = True


def queued_work(session: AsyncSession) -> bool:
    """Whether anything in this session's transactions queued work (`mark_queued`)."""
    return bool(session.info.get(QUEUED))


async def enqueue(
    session: AsyncSession,
    *,
    kind: str,
    to: Recipient,
    due_at: datetime,
    now: datetime,
    lane: str = NORMAL_LANE,
    patient_id: int | None = None,
    dose_day_id: int | None = None,
    alert_id: int | None = None,
    payload: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
    priority: int = 1,
) -> bool:
    """Insert a pending row for `to`; a row
    with the same dedupe key already queued makes this a no-op, even when two processes race
    (ON CONFLICT DO NOTHING). Returns whether a row was added."""
    values = dict(
        kind=kind, lane=lane, channel=to.channel, address=to.address, patient_id=patient_id, dose_day_id=dose_day_id, alert_id=alert_id,
        due_at=due_at, state=OutboxState.PENDING, priority=priority, attempts=0, resends=0, payload=payload or {}, dedupe_key=dedupe_key,
        created_at=now,
    )
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(Outbox).values(**values)
    statement = statement.on_conflict_do_nothing(index_elements=["dedupe_key"]) if dedupe_key else statement
    result = await session.exec(statement)
    mark_queued(session)
    return bool(result.rowcount)
