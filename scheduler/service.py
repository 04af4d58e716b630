"""Wiring the courier and the lifecycle to a clock.

PTB's JobQueue (APScheduler 3, in-memory jobs) is only the alarm clock: a periodic sweep plus
one wake-up at the next due instant, rebuilt from the database on start and after every change.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import datetime

from telegram import Bot
from telegram.ext import ContextTypes, JobQueue

from bot.db.models import RuntimeState
from bot.services.runtime import Runtime
from scheduler.delivery import Courier
from scheduler.lifecycle import advance, next_due
from scheduler.ownership import claim_sqlite_ownership

log = logging.getLogger("adherence.scheduler")

WAKE_JOB = "scheduler-wakeup"
SWEEP_JOB = "scheduler-sweep"


class Scheduler:
    def __init__(self, rt: Runtime, bot: Bot, *, concurrency: int = 16) -> None:
        self.rt = rt
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.courier = Courier(rt, bot, worker_id=self.worker_id, concurrency=concurrency)
        self._lock = asyncio.Lock()
        self._alert_lock = asyncio.Lock()
        self._job_queue: JobQueue | None = None
        self._waiting = False

    async def start(self, job_queue: JobQueue | None) -> None:
        if self.rt.engine.dialect.name == "sqlite":
            await claim_sqlite_ownership(self.rt, owner=self.worker_id)
        recovered = await self.courier.recover()
        if recovered:
            log.warning("event=recovered_interrupted_sends count=%d", recovered)
        self._job_queue = job_queue
        if job_queue is not None:
            job_queue.run_repeating(self._job, interval=self.rt.settings.delivery.sweep_seconds, first=0,
                                    name=SWEEP_JOB)

    async def _job(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        # Coalesce: if a tick is already waiting for the lock, it will see this change too.
        if self._waiting:
            return
        await self.tick()

    def wake(self) -> None:
        """Something changed: run now (alerts first, in their own lane)."""
        if self._job_queue is not None:
            self._job_queue.run_once(self._alert_job, when=0)
            self._job_queue.run_once(self._job, when=0)

    async def _alert_job(self, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self.drain_alerts()

    async def drain_alerts(self) -> int:
        async with self._alert_lock:
            return await self.courier.drain(lane="alert")

    async def tick(self) -> int:
        """Advance the lifecycle to now and send everything due. Safe to call any time."""
        self._waiting = True
        async with self._lock:
            self._waiting = False
            now = self.rt.now()
            async with self.rt.session() as session:
                while await advance(session, settings=self.rt.settings, now=now):
                    await session.commit()
                await session.commit()
            handled = await self.drain_alerts()
            handled += await self.courier.drain(lane="normal")
            await self._heartbeat()
            await self._schedule_wakeup()
        return handled

    async def _heartbeat(self) -> None:
        async with self.rt.session() as session:
            row = await session.get(RuntimeState, "scheduler.last_sweep") or RuntimeState(key="scheduler.last_sweep")
            row.value, row.updated_at = self.worker_id, self.rt.now()
            session.add(row)
            await session.commit()

    async def next_due(self) -> datetime | None:
        async with self.rt.session() as session:
            return await next_due(session, now=self.rt.now())

    async def _schedule_wakeup(self) -> None:
        if self._job_queue is None:
            return
        due = await self.next_due()
        for job in self._job_queue.get_jobs_by_name(WAKE_JOB):
            job.schedule_removal()
        if due is not None:
            delay = max(0.0, (due - self.rt.now()).total_seconds())
            self._job_queue.run_once(self._job, when=delay, name=WAKE_JOB)
