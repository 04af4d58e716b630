"""Wiring the courier and the lifecycle to a clock.

PTB's JobQueue (APScheduler 3, in-memory jobs) is only the alarm clock: a periodic sweep plus
one wake-up at the next due instant, rebuilt from the database on start and after every pass.
Jobs only poke; the work runs in two tasks of our own:

- the main runner: a lifecycle step, the alert lane, then the reminder fan-out, which takes
  further lifecycle steps between its batches (when the queued rows run out, a wake-up arrives,
  or every few seconds), so the first of 10,000 reminders due together leaves at once;
- the alert runner: alert repeats/escalations and the alert lane only, so a fan-out of
  thousands of reminders never delays a safety alert (the flood gate serves alerts first).

When the application stops (its `post_stop`, `bot.app.on_stop`, calls `Scheduler.stop`), the
fan-out stops claiming, rows still waiting for a slot are handed back untouched, requests in
flight finish and are recorded, and on SQLite the ownership of the file is released. On PostgreSQL,
lifecycle steps are serialised across processes by an advisory lock and outbox rows are
claimed with SKIP LOCKED; on SQLite one process owns the scheduler (`ownership.py`).
Every job is allowed to run late (APScheduler would otherwise drop a run >1 s late).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from sqlalchemy import text, update

from bot.channels.port import Channel
from bot.db.models import RuntimeState
from bot.services.outbox import ALERT_LANE, NORMAL_LANE
from bot.services.runtime import Runtime
from scheduler import ownership
from scheduler.courier import Courier
from scheduler.digests import next_digest
from scheduler.lifecycle import advance_alerts, next_due, next_wakeup
from scheduler.lifecycle import step as lifecycle_step

log = logging.getLogger("adherence.scheduler")

WAKE_JOB = "scheduler-wakeup"
SWEEP_JOB = "scheduler-sweep"
HEARTBEAT_KEY = "scheduler.last_sweep"
RETRY_AFTER_ERROR = 5.0
UPKEEP_SECONDS = 10.0
STEP_AT_LEAST = 5.0  # seconds: during a fan-out, the rest of the lifecycle still moves this often
# APScheduler drops a run more than 1 s late by default ("missed"); a late wake-up must still run.
LATE_IS_FINE = {"misfire_grace_time": None, "coalesce": True}
# pg_advisory_xact_lock key for lifecycle passes ("adherence" in ASCII, fits in a bigint).
LIFECYCLE_LOCK = 0x61646865_72656E63


class Scheduler:
    def __init__(self, rt: Runtime, channels: dict[str, Channel], *, concurrency: int | None = None,
                 worker_id: str | None = None) -> None:
        self.rt = rt
        self.worker_id = worker_id or ownership.worker_id()
        self.courier = Courier(rt, channels, worker_id=self.worker_id, in_flight=concurrency)
        self.courier.on_alert_raised = self.wake_alerts
        self._lock = asyncio.Lock()
        self._alert_lock = asyncio.Lock()
        self._job_queue = None  # PTB's JobQueue (any object with run_once, run_repeating, get_jobs_by_name)
        self._application = None
        self._runners: dict[str, asyncio.Task | None] = {"main": None, "alert": None}
        self._dirty = {"main": False, "alert": False}
        self._stopped = False
        self._ready = False
        self._more = False
        self._steps = 0
        self._last_step = 0.0
        self._last_upkeep = 0.0
        self._upkeep_at: datetime | None = None  # the clock's instant at the last upkeep
        self._failed = False  # a pass failed since the last upkeep (rows may be left claimed)
        self._created = time.monotonic()
        self.digests = True  # queue the morning digests (a simulation on a fake clock turns them off)

    @property
    def _sqlite(self) -> bool:
        return self.rt.engine.dialect.name == "sqlite"

    # --- start and stop --------------------------------------------------------------------------
    async def start(self, job_queue) -> None:
        """Rebuild from the database: own the SQLite file, recover interrupted sends, start the sweep."""
        if self._sqlite:
            await ownership.claim_sqlite_ownership(self.rt, owner=self.worker_id)
        released, requeued = await self.courier.recover(startup=True)
        if released or requeued:
            log.warning("event=recovered_interrupted_sends handed_back=%d requeued_in_flight=%d", released, requeued)
        self._job_queue = job_queue
        if job_queue is not None:
            self._application = job_queue.application
            self.digests = bool(self._application.bot_data.get("digests", True))
            interval = self.rt.settings.delivery.sweep_seconds
            job_queue.run_repeating(self._on_alarm, interval=interval, first=interval, name=SWEEP_JOB,
                                    job_kwargs=LATE_IS_FINE)
            # Not `first=0` above: a repeating job added before the JobQueue starts skips its first
            # run (APScheduler computes it from start-up time), so the start-up pass is a one-off.
            job_queue.run_once(self._on_alarm, when=0, name=WAKE_JOB, job_kwargs=LATE_IS_FINE)

    async def stop(self) -> None:
        """Stop sending (rows waiting for a slot go back to pending), wait for requests in flight."""
        self._stopped = True
        self.courier.stop()
        tasks = [t for t in self._runners.values() if t is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._job_queue is not None:
            for name in (WAKE_JOB, SWEEP_JOB):
                for job in self._job_queue.get_jobs_by_name(name):
                    job.schedule_removal()
        if self._sqlite:
            await ownership.release_sqlite_ownership(self.rt, owner=self.worker_id)

    def _should_stop(self) -> bool:
        app = self._application
        return self._stopped or (app is not None and not app.running)

    # --- pokes -----------------------------------------------------------------------------------
    async def _on_alarm(self, context) -> None:
        self.wake()

    def wake(self) -> None:
        """Something changed: run now (alerts first, in their own lane)."""
        self.courier.poke()
        self._kick("alert")
        self._kick("main")

    def wake_alerts(self) -> None:
        self.courier.poke()
        self._kick("alert")

    def _kick(self, runner: str) -> None:
        self._dirty[runner] = True
        task = self._runners[runner]
        if task is not None and not task.done():
            return
        app = self._application
        if self._should_stop() or app is None:
            return  # not running (yet): the sweep at start-up picks everything up
        work = self._run_main() if runner == "main" else self._run_alerts()
        # Not `app.create_task`: PTB's stop() waits for those, and a fan-out in progress would hold
        # it up; the application's post_stop (bot.app.on_stop) stops the scheduler instead.
        self._runners[runner] = asyncio.get_running_loop().create_task(work, name=f"scheduler-{runner}")

    async def _run_main(self) -> None:
        while self._dirty["main"] and not self._should_stop():
            self._dirty["main"] = False
            try:
                await self.tick()
            except Exception:
                log.exception("event=scheduler_pass_failed retry_in=%s", RETRY_AFTER_ERROR)
                self._schedule(RETRY_AFTER_ERROR)
                return

    async def _run_alerts(self) -> None:
        while self._dirty["alert"] and not self._should_stop():
            self._dirty["alert"] = False
            try:
                # A row the lane deferred or will retry (a copy still in flight, a 5xx), or an
                # alert's next repeat, must not wait for the next reminder pass to be looked at
                # again. A drain that found nothing to do changed no instant.
                if await self.drain_alerts():
                    await self._schedule_wakeup()
            except Exception:
                self._failed = True
                log.exception("event=alert_lane_failed retry_in=%s", RETRY_AFTER_ERROR)
                self._schedule(RETRY_AFTER_ERROR)
                return

    # --- the work --------------------------------------------------------------------------------
    async def tick(self) -> int:
        """Advance the lifecycle to now and send everything due. Safe to call any time.

        The lifecycle moves one batch per step and the fan-out starts after the first, so the
        first of 10,000 reminders due together goes out after one batch is queued, not all."""
        async with self._lock:
            first_step = self._steps
            try:
                await self._step()
                if self._upkeep_due():
                    await self._upkeep()
                handled = await self.drain_alerts()
                while True:
                    handled += await self.courier.drain(lane=NORMAL_LANE, between=self._between_batches)
                    if not self._more or self._should_stop() or self.courier.stopping:
                        break
                    await self._step()
                if self._steps - first_step > 1:
                    handled += await self.drain_alerts()  # raised by the later steps (e.g. days closed)
                await self._schedule_wakeup()
            except BaseException:
                self._failed = True  # rows may be left claimed: the next pass recovers them
                raise
            if not self._ready:
                self._ready = True
                log.info("event=scheduler_ready worker=%s seconds_since_created=%.3f",
                         self.worker_id, time.monotonic() - self._created)
        return handled

    async def drain_alerts(self) -> int:
        """Repeat and escalate what is due, send the alert lane; returns how much was done (alerts
        advanced + rows handled)."""
        async with self._alert_lock:
            if self.courier.drained(ALERT_LANE):  # drained at this instant, nothing new since
                return 0
            async with self.rt.session() as session:
                await self._serialize(session)
                advanced = await advance_alerts(session, settings=self.rt.settings, now=self.rt.now())
                await session.commit()
            return advanced + await self.courier.drain(lane=ALERT_LANE)

    async def _between_batches(self, starved: bool) -> bool:
        # A wake-up arrived during a long fan-out, or the queued rows run out and the lifecycle has
        # more to queue (while they last, another step would only slow the fan-out down).
        stepped = False
        if self._dirty["main"] or (self._more and (starved or time.monotonic() - self._last_step >= STEP_AT_LEAST)):
            self._dirty["main"] = False
            await self._step()
            stepped = True
        if time.monotonic() - self._last_upkeep >= UPKEEP_SECONDS:
            await self._upkeep()  # may hand rows back
            stepped = True
        return stepped

    async def _step(self) -> None:
        """One lifecycle step (at most a batch of each kind of work); `_more` says whether to go on."""
        async with self.rt.session() as session:
            await self._serialize(session)
            busy, more = await lifecycle_step(session, settings=self.rt.settings, now=self.rt.now(), digests=self.digests)
            await session.commit()
        self._more = more
        self._steps += 1
        self._last_step = time.monotonic()
        if busy:
            self.courier.poke()  # it may have queued rows due now: both lanes claim again
            if self._steps > 1:
                self.wake_alerts()  # a step may have raised alerts: they must not wait for the fan-out

    def _upkeep_due(self) -> bool:
        """Every pass keeps up, except another pass at the very instant of the last upkeep (the
        clock has not moved: the same heartbeat, nothing can have gone stale) when nothing has
        failed since (no batch can have left rows behind)."""
        return self._failed or self.courier.troubled or self._upkeep_at != self.rt.now()

    async def _upkeep(self) -> None:
        """Heartbeat (and SQLite ownership), and rows left behind by dead workers or failed batches."""
        self._last_upkeep = time.monotonic()
        self._upkeep_at, self._failed = self.rt.now(), False
        released, requeued = await self.courier.recover(startup=False)
        if released or requeued:
            log.warning("event=recovered_orphaned_rows handed_back=%d requeued_in_flight=%d", released, requeued)
        await self._heartbeat(self.rt.now())

    async def _serialize(self, session) -> None:
        """PostgreSQL: one lifecycle pass at a time across processes (released at commit)."""
        if not self._sqlite:
            await session.exec(text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=LIFECYCLE_LOCK))

    async def _heartbeat(self, now: datetime) -> None:
        async with self.rt.session() as session:  # ownership and heartbeat in one transaction
            if self._sqlite and not await ownership.refresh_ownership(session, owner=self.worker_id, now=now):
                await session.rollback()
                log.critical("event=scheduler_ownership_lost worker=%s: another process owns this SQLite database; "
                             "this scheduler stops", self.worker_id)
                self._stopped = True
                self.courier.stop()
                return
            beat = await session.exec(update(RuntimeState).where(RuntimeState.key == HEARTBEAT_KEY)
                                      .values(value=self.worker_id, updated_at=now))
            if beat.rowcount != 1:  # the first beat on this database
                session.add(RuntimeState(key=HEARTBEAT_KEY, value=self.worker_id, updated_at=now))
            await session.commit()

    async def next_due(self) -> datetime | None:
        now = self.rt.now()
        async with self.rt.single() as session:
            return self._with_digest(await next_due(session, now=now), now)

    def _with_digest(self, due: datetime | None, now: datetime) -> datetime | None:
        digest_at = next_digest(self.rt.settings, now=now) if self.digests else None
        return min((d for d in (due, digest_at) if d is not None), default=None)

    async def _schedule_wakeup(self) -> None:
        if self._job_queue is None or self._should_stop():
            return
        now = self.rt.now()
        async with self.rt.single() as session:
            due, overdue = await next_wakeup(session, now=now)
            due = self._with_digest(due, now)
        delay = None if due is None else max(0.0, (due - now).total_seconds())
        if overdue:  # held by another process right now: look again shortly
            delay = 1.0 if delay is None else min(delay, 1.0)
        self._schedule(delay)

    def _schedule(self, delay: float | None) -> None:
        if self._job_queue is None or self._should_stop():
            return
        for job in self._job_queue.get_jobs_by_name(WAKE_JOB):
            job.schedule_removal()
        if delay is not None:
            self._job_queue.run_once(self._on_alarm, when=delay, name=WAKE_JOB, job_kwargs=LATE_IS_FINE)
