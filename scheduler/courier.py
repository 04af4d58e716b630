"""The courier: claim outbox rows briefly, compose each from current state (`compose`), hand it to
its channel adapter (`bot.channels`), record the outcome (`record`).

Row states: pending → claimed → sending → sent | unknown | failed | skipped.

- claimed: taken by one worker (PostgreSQL: `FOR UPDATE SKIP LOCKED`), not yet dispatched.
  Safe to hand back: nothing left the process.
- sending: committed right before the request is dispatched (after the flood gate granted
  its slot), so a crash can only be ambiguous for requests actually in flight.

Delivery policy (DESIGN.md §3, at-least-once-safe), on the adapter's `DeliveryResult`
(`bot.channels.port`; each adapter's docstring maps its own answers, e.g. a chat's 403 or an
SMTP 550, onto it):
- sent (`Sent`): the channel accepted it (with a message id where it has one).
- skipped: the row no longer makes sense (day answered or closed, patient paused or
  unreachable, alert acknowledged): never sent late. The reason is kept in `last_error`.
- deferred (pending again, later): a follow-up is never sent sooner than the follow-up
  interval after its reminder actually went out (after downtime both may be due at once).
- unknown (`Unknown`): the request may have reached the channel (read timeout, connection lost
  while waiting for the answer). Not resent; the day's follow-up and the patient's buttons still work.
- pending again with backoff (`NotDelivered`): certainly not delivered (connection refused,
  connect or pool timeout, 5xx or any other error answer). `RetryAfter` (429) waits and does not
  count as an attempt. Retries stop when the row stops making sense or after `GIVE_UP`.
- failed (`Refused`): the recipient is gone for good (blocked or deactivated the bot, chat not
  found) → the patient becomes unreachable (no further sends) and coordinators get one
  alert; failed (`Rejected`): a bug in what we sent, logged as an error.
- A staff recipient (chat or mailbox) refused for good is recorded as unreachable; an alert with no reachable recipient
  left escalates at once (`bot.services.alerts.escalate_now`).
- Kinds besides the patient's messages and alert copies: `symptom_advice` (the 120 advice for one
  emergency report, sent by the handler itself and retried from here only if that send failed)
  and `alert_update` (edits a delivered alert copy after the patient added a report).
- Claim order is by `priority` (0: first emergency alerts and patient advice, 1: new, 2: repeats
  and updates), and a row takes an in-flight slot (per lane and channel) only once the flood gate
  granted its chat's turn, so a queue for one chat never holds up another's emergency, and a
  slow mail relay never holds up a chat.
- A row re-queued after a crash is sent with a first line saying it may be a duplicate ("take
  only one dose today" on dose reminders).
- Crash recovery (`recover`): claimed rows go back to pending untouched; rows found `sending`
  (in flight when the process died) are re-queued once and counted in `resends` — the one
  case that can duplicate: the crash fell between the channel accepting and our commit. A
  re-queued row is re-checked like any other, so a day answered meanwhile is not reminded.

Outcomes of concurrent sends are committed together (`Recorder`), which is what lets one
process keep up with the flood limits on SQLite as well as PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, update
from sqlmodel import col, select

from bot.domain.alerts import AlertKind
from bot.channels.port import (AbortTag, Channel, Dispatch, NotDelivered, Recipient, Refused,
                               Rejected, RetryAfter, SendAborted, Sent, Unknown)
from bot.db.models import Alert, Outbox, Patient
from bot.domain.outbox import Lane, OutboxState
from bot.services.alerts import escalate_now, mark_recipient_unreachable, raise_alert, reachable_recipients
from bot.services.audit import audit
from bot.services.runtime import Runtime
from scheduler.compose import Defer, Plan, Skip, load, prepare
from scheduler.ownership import alive
from scheduler.record import Recorder

log = logging.getLogger("adherence.delivery")

# PostgreSQL: another live instance may hold claims this long (its batches last seconds).
STALE_CLAIM = timedelta(minutes=5)
GIVE_UP = timedelta(hours=24)
MAX_BACKOFF = 300
LOOK_AGAIN = {True: 0.1, False: 0.5}  # seconds between claims while sends are outstanding (alert lane: True)
IN_FLIGHT = {Lane.ALERT: 4, Lane.NORMAL: 8}  # httpx's pool slows down past ~8 concurrent requests


class ClaimLost(SendAborted):
    """The row is no longer claimed by us (recovered by another instance): do not send it."""


class Courier:
    def __init__(self, rt: Runtime, channels: dict[str, Channel], *, worker_id: str, in_flight: int | None = None,
                 batch: int | None = None) -> None:
        self.rt = rt
        self.channels = channels
        self.worker_id = worker_id
        self.recorder = Recorder(rt, worker_id=worker_id)
        self._holding: set[int] = set()  # rows this courier has claimed and not yet settled
        # Claims and orphan recovery never interleave: recovery reads `_holding` and the table
        # as of one moment, so a row claimed meanwhile is never mistaken for an orphan.
        self._claims = asyncio.Lock()
        rate = rt.settings.delivery.global_per_second
        self.batch = batch or max(16, min(256, int(rate * 2)))
        self._in_flight_sizes = {Lane.ALERT: IN_FLIGHT[Lane.ALERT], Lane.NORMAL: in_flight or IN_FLIGHT[Lane.NORMAL]}
        self._slots: dict[tuple[str, str], asyncio.Semaphore] = {}
        self._tags: set[AbortTag] = set()
        self.stopping = False
        self.sent = 0
        self._pokes = 0  # wake-ups seen (see `poke`)
        # lane → (instant, wake-ups seen) of the last claim of a drain that took every due row:
        # at that same instant, with no wake-up since, another drain of that lane finds nothing.
        self._drained: dict[str, tuple[Any, int]] = {}
        self.troubled = False  # a delivery or drain failed since the last recovery
        self._poke_waiters: set[asyncio.Future[None]] = set()
        # Called after this courier raised an alert (403), so the alert lane runs now.
        self.on_alert_raised = lambda: None

    @property
    def _postgres(self) -> bool:
        return self.rt.engine.dialect.name == "postgresql"

    def stop(self) -> None:
        """Stop claiming; sends still waiting for a slot give their rows back."""
        self.stopping = True
        for tag in list(self._tags):
            tag.abort()

    async def recover(self, *, startup: bool = True) -> tuple[int, int]:
        """Rows left claimed or in flight: (handed back, re-queued as possible duplicates).

        At SQLite start-up everything is ours to recover (one process owns the file). Otherwise:
        rows of a worker that is gone (same host, pid dead), of one silent for STALE_CLAIM, and
        our own orphans (claimed, but no task of ours holds them any more, e.g. after a database
        error mid-batch)."""
        now = self.rt.now()
        self.troubled = False  # whatever failed before this moment, this recovery sees
        self._drained.clear()  # rows it hands back are due again
        async with self._claims, self.rt.session() as session:
            busy = or_(Outbox.state == OutboxState.CLAIMED, Outbox.state == OutboxState.SENDING)
            if startup and not self._postgres:
                condition = busy
            else:
                rows = (await session.exec(select(Outbox.id, Outbox.claimed_by, Outbox.claimed_at).where(busy))).all()
                dead = [o for o in {owner for _, owner, _ in rows} if o and o != self.worker_id and not alive(o)]
                stale = now - STALE_CLAIM
                if not any(owner in dead
                           or (owner is not None and owner != self.worker_id and at is not None and at < stale)
                           or (owner == self.worker_id and row_id not in self._holding)
                           for row_id, owner, at in rows):
                    return 0, 0  # the usual case: nothing orphaned, so no write (the same test as below, in Python)
                condition = busy & (
                    col(Outbox.claimed_by).in_(dead)
                    | ((Outbox.claimed_at < now - STALE_CLAIM) & (Outbox.claimed_by != self.worker_id))
                    | ((Outbox.claimed_by == self.worker_id) & col(Outbox.id).not_in(self._holding or {0})))
            released = await session.exec(update(Outbox).where(condition, Outbox.state == OutboxState.CLAIMED)
                                           .values(state=OutboxState.PENDING))
            requeued = await session.exec(update(Outbox).where(condition, Outbox.state == OutboxState.SENDING).values(
                state=OutboxState.PENDING, resends=Outbox.resends + 1, last_error="interrupted in flight; delivery unknown"))
            await session.commit()
            return released.rowcount, requeued.rowcount

    async def claim(self, *, lane: str, limit: int) -> list[Outbox]:
        """Claim due rows in one statement (a write from the start: no lock upgrade on SQLite)."""
        now = self.rt.now()
        due = (select(Outbox.id).where(Outbox.state == OutboxState.PENDING, Outbox.lane == lane, Outbox.due_at <= now)
               .order_by(col(Outbox.priority), col(Outbox.due_at), col(Outbox.id)).limit(limit))
        if self._postgres:
            due = due.with_for_update(skip_locked=True)
        async with self._claims, self.rt.single() as session:  # one atomic statement
            result = await session.exec(
                update(Outbox).where(col(Outbox.id).in_(due.scalar_subquery()))
                .values(state=OutboxState.CLAIMED, claimed_at=now, claimed_by=self.worker_id)
                .returning(Outbox))
            rows = list(result.scalars().all())
            self._holding.update(r.id for r in rows)
            await session.commit()
        rows.sort(key=lambda r: (r.priority, r.due_at, r.id))
        return rows

    async def plan(self, rows: list[Outbox]) -> list[tuple[Outbox, Plan | Exception]]:
        now = self.rt.now()
        async with self.rt.single() as session:  # reads only
            loaded = await load(session, rows, now=now, settings=self.rt.settings)
        planned: list[tuple[Outbox, Plan | Exception]] = []
        for row in rows:
            try:
                planned.append((row, prepare(loaded, settings=self.rt.settings, row=row, now=now)))
            except Exception as error:  # one bad row must not stop the others
                planned.append((row, error))
        return planned

    async def drain(self, *, lane: str, between=None) -> int:
        """Send everything due in one lane; returns how many rows were handled.

        `between(starved)` is awaited before each claim, so a long fan-out still lets the lifecycle
        move on; `starved` says the due rows are running out; it returns whether it queued anything
        (a lifecycle step), which makes the next claim worth its statement."""
        tag = AbortTag()
        self._tags.add(tag)
        handled = 0
        tasks: set[asyncio.Task[None]] = set()
        low_water = self.batch // 2
        room = asyncio.Event()  # set when the outstanding rows fall to the low-water mark (O(1) per row)

        def finished(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("event=delivery_task_failed error=%r", task.exception())
            if len(tasks) <= low_water:
                room.set()

        starved = True  # the last claim got fewer rows than it asked for
        loop = asyncio.get_running_loop()
        # After a claim that got fewer rows than it asked for (every due row taken): the instant
        # it claimed at, the wake-ups seen by then, and when to claim again regardless. An earlier
        # drain of this lane counts too (see `drained`).
        drained: tuple[Any, int] | None = None if self.troubled else self._drained.get(lane)
        look_again_at = 0.0
        try:
            while not self.stopping:
                if len(tasks) > low_water:
                    room.clear()
                    await room.wait()
                    continue
                stepped = await between(starved) if between is not None else False
                if drained is not None and not stepped and drained[1] == self._pokes:
                    # Nothing that could queue a due row has happened since that claim (no
                    # lifecycle step, no wake-up): another claim finds nothing new unless time
                    # has moved on. Wait for a send to finish, a wake-up, or the look-again time.
                    if not tasks:
                        if self.rt.now() == drained[0]:
                            break
                    elif loop.time() < look_again_at:
                        await self._wait(tasks, timeout=look_again_at - loop.time())
                        continue
                pokes, claimed_at = self._pokes, self.rt.now()
                wanted = self.batch - len(tasks)
                rows = await self.claim(lane=lane, limit=wanted)
                starved = len(rows) < wanted
                drained = (claimed_at, pokes) if starved else None
                # Rows waiting for one chat's 1/s must not keep a new emergency for another chat
                # unclaimed: look again on any wake-up, or shortly.
                look_again_at = loop.time() + LOOK_AGAIN[lane == Lane.ALERT]
                if not rows:
                    if not tasks:
                        break
                    await self._wait(tasks, timeout=LOOK_AGAIN[lane == Lane.ALERT])
                    continue
                handled += len(rows)
                for row, plan in await self.plan(rows):
                    task = asyncio.create_task(self.deliver(row, plan, tag))
                    tasks.add(task)
                    task.add_done_callback(finished)
        except BaseException:
            self.troubled = True
            self._drained.pop(lane, None)
            raise
        finally:
            if tasks:
                if self.stopping:
                    tag.abort()
                await asyncio.gather(*tasks, return_exceptions=True)
            self._tags.discard(tag)
        if drained is not None and not self.stopping:
            self._drained[lane] = drained
        else:
            self._drained.pop(lane, None)
        return handled

    def drained(self, lane: str) -> bool:
        """Whether a drain of `lane` now would find nothing: one took every due row at this very
        instant, nothing failed since, and nothing woke the courier (a handler's row, a lifecycle
        step that queued some, an alarm). Production's clock always moves, so there this holds
        only for passes in the same instant (a simulated clock's)."""
        return not self.troubled and self._drained.get(lane) == (self.rt.now(), self._pokes)

    def poke(self) -> None:
        """Something may have queued a due row (a handler, an alarm): a drain waiting after an
        empty claim claims again now."""
        self._pokes += 1
        for waiter in self._poke_waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _wait(self, tasks: set[asyncio.Task[None]], *, timeout: float) -> None:
        """Until one of `tasks` finishes, a poke, or `timeout`."""
        waiter = asyncio.get_running_loop().create_future()
        self._poke_waiters.add(waiter)
        try:
            await asyncio.wait({*tasks, waiter}, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._poke_waiters.discard(waiter)
            waiter.cancel()

    def _slot(self, lane: str, channel: str) -> asyncio.Semaphore:
        """In-flight slots per lane and channel: a slow mail relay never holds up a chat's alert."""
        if (lane, channel) not in self._slots:
            self._slots[(lane, channel)] = asyncio.Semaphore(self._in_flight_sizes.get(lane, IN_FLIGHT[Lane.NORMAL]))
        return self._slots[(lane, channel)]

    async def deliver(self, row: Outbox, plan: Plan | Exception, tag: AbortTag | None = None) -> None:
        try:
            await self._deliver(row, plan, tag)
        except BaseException:
            self.troubled = True  # the row may be left claimed or in flight: recovery must look
            raise
        finally:
            self._holding.discard(row.id)

    async def _deliver(self, row: Outbox, plan: Plan | Exception, tag: AbortTag | None) -> None:
        now = self.rt.now()
        if isinstance(plan, Exception):
            log.error("event=render_failed outbox_id=%s kind=%s error=%r", row.id, row.kind, plan)
            await self.recorder.outcome(row, state=OutboxState.FAILED, finished_at=now, last_error=f"render: {plan!r}"[:500])
            return
        if isinstance(plan, Skip):
            await self.recorder.outcome(row, state=OutboxState.SKIPPED, finished_at=now, last_error=plan.reason)
            return
        if isinstance(plan, Defer):
            await self.recorder.outcome(row, state=OutboxState.PENDING, due_at=plan.until, last_error=plan.reason)
            return
        dispatched = False
        slot = self._slot(row.lane, row.channel)
        holding_slot = False

        async def on_dispatch() -> None:
            # The in-flight slot is taken only once the flood gate has granted this chat's turn:
            # a row waiting for one chat's 1/s never holds up a send to another chat.
            nonlocal dispatched, holding_slot
            if dispatched:
                return  # a retry after 429: already in flight once
            if self.stopping or (tag is not None and tag.aborted):
                raise SendAborted
            await slot.acquire()
            holding_slot = True
            if not await self.recorder.mark_sending(row.id):
                raise ClaimLost
            dispatched = True
            row.attempts += 1

        channel = self.channels.get(row.channel)
        if channel is None:
            await self.recorder.outcome(row, state=OutboxState.FAILED, finished_at=now,
                                        last_error=f"no {row.channel} channel configured")
            return
        dispatch = Dispatch(urgent=row.lane == Lane.ALERT, rank=row.priority, on_dispatch=on_dispatch, tag=tag)
        try:
            if self.stopping or (tag is not None and tag.aborted):
                raise SendAborted
            try:
                result = await channel.deliver(Recipient(row.channel, row.address), plan, dispatch)
            finally:
                if holding_slot:
                    slot.release()
        except ClaimLost:
            log.warning("event=claim_lost outbox_id=%s", row.id)
            return
        except SendAborted:
            await self.recorder.outcome(row, state=OutboxState.PENDING)
            return
        except Exception as error:
            log.exception("event=send_crashed outbox_id=%s kind=%s", row.id, row.kind)
            if dispatched:  # the answer may have been lost in our own code
                await self.recorder.outcome(row, state=OutboxState.UNKNOWN, finished_at=self.rt.now(),
                                            last_error=f"error after dispatch: {error!r}"[:500])
            else:
                await self._retry(row, None, f"error before dispatch: {error!r}"[:500])
            return
        await self._record(row, result)

    async def _record(self, row: Outbox, result) -> None:
        match result:
            case Sent(message_id=message_id):
                self.sent += 1
                await self.recorder.outcome(row, state=OutboxState.SENT, message_id=message_id,
                                            finished_at=self.rt.now())
            case RetryAfter(seconds=delay):
                await self._retry(row, delay, f"429 retry after {delay:g}", counts=False)
            case Refused(reason=reason):
                await self._refused(row, reason)
            case Rejected(reason=reason):
                log.error("event=send_rejected outbox_id=%s kind=%s error=%r", row.id, row.kind, reason)
                await self.recorder.outcome(row, state=OutboxState.FAILED, finished_at=self.rt.now(),
                                            last_error=reason[:500])
            case Unknown(reason=reason):
                log.warning("event=send_unknown outbox_id=%s kind=%s error=%r", row.id, row.kind, reason)
                await self.recorder.outcome(row, state=OutboxState.UNKNOWN, finished_at=self.rt.now(),
                                            last_error=reason[:500])
            case NotDelivered(reason=reason):
                await self._retry(row, None, reason[:500])

    async def _retry(self, row: Outbox, delay: float | None, reason: str, *, counts: bool = True) -> None:
        now = self.rt.now()
        if now - row.created_at > GIVE_UP:
            log.error("event=send_failed outbox_id=%s kind=%s attempts=%d reason=%r", row.id, row.kind,
                      row.attempts, reason)
            await self.recorder.outcome(row, state=OutboxState.FAILED, finished_at=now, last_error=f"gave up: {reason}")
            return
        if delay is None:
            delay = min(2 ** max(row.attempts, 1), MAX_BACKOFF)
        values: dict[str, Any] = {"state": OutboxState.PENDING, "due_at": now + timedelta(seconds=delay), "last_error": reason}
        if not counts:
            values["attempts"] = max(row.attempts - 1, 0)
        await self.recorder.outcome(row, **values)

    async def _refused(self, row: Outbox, reason: str) -> None:
        """Blocked, deactivated or gone: stop sending to this patient and tell the team once."""
        now = self.rt.now()
        raised = False
        async with self.rt.session() as session:
            await session.exec(update(Outbox).where(Outbox.id == row.id).values(
                state=OutboxState.FAILED, finished_at=now, last_error=f"refused: {reason}"[:500]))
            patient = await session.get(Patient, row.patient_id) if row.patient_id else None
            recipient = Recipient(row.channel, row.address)
            if row.payload.get("helper") and not (patient is not None and patient.address is not None
                                                  and recipient == patient.recipient):
                pass  # a family helper's chat: the notice is lost, the helper stays as the patient set it
            elif patient is not None and patient.address is not None and recipient == patient.recipient:
                flipped = await session.exec(update(Patient).where(Patient.id == patient.id,
                                                                   Patient.unreachable.is_(False))
                                             .values(unreachable=True))
                if flipped.rowcount == 1:
                    audit(session, at=now, actor_kind="system", actor_id="courier", action="patient.unreachable",
                          entity="patient", entity_id=patient.subject_id, after={"unreachable": True},
                          reason=reason)
                    raised = await raise_alert(session, settings=self.rt.settings, now=now, site_id=patient.site_id,
                                               kind=AlertKind.UNREACHABLE, patient=patient,
                                               dedupe_key=f"unreachable:{patient.id}:{now.isoformat()}") is not None
            else:  # a coordinator, alert chat or escalation contact: every alert still needs a person
                await mark_recipient_unreachable(session, settings=self.rt.settings, recipient=recipient, now=now,
                                                 error=reason)
                alert = await session.get(Alert, row.alert_id) if row.alert_id else None
                if alert is not None and alert.acknowledged_at is None and alert.escalated_at is None and \
                        not await reachable_recipients(session, self.rt.settings.site(alert.site_id)):
                    await escalate_now(session, settings=self.rt.settings, alert=alert, now=now,
                                       reason="every recipient refused the alert")
                    raised = True
            await session.commit()
        if raised:
            self.on_alert_raised()


async def counts_by_state(rt: Runtime) -> dict[str, int]:
    async with rt.session() as session:
        return dict((await session.exec(select(Outbox.state, func.count()).group_by(Outbox.state))).all())
