"""Recording outcomes: marks ("in flight") and outcomes of concurrent sends share one short
transaction (group commit), which is what lets one process keep up with the flood limits on
SQLite as well as PostgreSQL. A delivered reminder's message id goes on its day (so closing the
day can edit it), a delivered alert copy into `alert_message` (so acknowledging edits them all).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlmodel import col

from bot.db.models import AlertMessage, DoseDay, Outbox
from bot.domain.outbox import OutboxKind, OutboxState
from bot.services.runtime import Runtime


class Recorder:
    """Group commit: marks and outcomes of concurrent sends share one short transaction."""

    def __init__(self, rt: Runtime, *, worker_id: str) -> None:
        self.rt = rt
        self.worker_id = worker_id
        self._marks: list[tuple[int, asyncio.Future[bool]]] = []
        self._outcomes: list[tuple[Outbox, dict[str, Any], asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    def _kick(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush_all())

    async def mark_sending(self, row_id: int) -> bool:
        future = asyncio.get_running_loop().create_future()
        self._marks.append((row_id, future))
        self._kick()
        return await asyncio.shield(future)

    async def outcome(self, row: Outbox, **values: Any) -> None:
        future = asyncio.get_running_loop().create_future()
        self._outcomes.append((row, values, future))
        self._kick()
        await asyncio.shield(future)

    async def _flush_all(self) -> None:
        while self._marks or self._outcomes:
            marks, self._marks = self._marks, []
            outcomes, self._outcomes = self._outcomes, []
            futures = [f for _, f in marks] + [f for _, _, f in outcomes]
            try:
                async with self.rt.session() as session:
                    marked = await self._write(session, marks, outcomes)
                    await session.commit()
            except Exception as error:  # each waiter decides what a failed write means for its row
                for future in futures:
                    if not future.done():
                        future.set_exception(error)
                continue
            for row_id, future in marks:
                if not future.done():
                    future.set_result(row_id in marked)
            for _, _, future in outcomes:
                if not future.done():
                    future.set_result(None)

    async def _write(self, session, marks, outcomes) -> set[int]:
        marked: set[int] = set()
        if marks:
            result = await session.exec(
                update(Outbox).where(col(Outbox.id).in_([i for i, _ in marks]), Outbox.state == OutboxState.CLAIMED,
                                     Outbox.claimed_by == self.worker_id)
                .values(state=OutboxState.SENDING, attempts=Outbox.attempts + 1).returning(Outbox.id))
            marked = set(result.scalars().all())
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        message_ids, alert_messages = [], []
        for row, values, _ in outcomes:
            groups[tuple(sorted(values))].append({"row_id": row.id, **{f"v_{k}": v for k, v in values.items()}})
            if values.get("state") == OutboxState.SENT:
                if row.kind == OutboxKind.REMINDER and row.dose_day_id:
                    message_ids.append({"dose_id": row.dose_day_id, "message_id": values["message_id"]})
                if row.kind == OutboxKind.ALERT and values["message_id"] is not None:  # an editable copy (not a mail)
                    alert_messages.append(dict(alert_id=row.alert_id, channel=row.channel, address=row.address,
                                               message_id=values["message_id"], sent_at=values["finished_at"]))
        connection = await session.connection()
        table = Outbox.__table__
        for keys, params in groups.items():  # executemany, one statement per shape of outcome
            # Only rows still ours: one recovered from us after a long stall belongs to its new worker.
            statement = update(table).where(table.c.id == bindparam("row_id"),
                                            table.c.claimed_by == self.worker_id).values(
                {key: bindparam(f"v_{key}", type_=table.c[key].type) for key in keys})
            await connection.execute(statement, params)
        if message_ids:
            dose = DoseDay.__table__
            await connection.execute(update(dose).where(dose.c.id == bindparam("dose_id"))
                                     .values(reminder_message_id=bindparam("message_id")), message_ids)
        if alert_messages:
            await connection.execute(insert(AlertMessage.__table__), alert_messages)
        return marked
