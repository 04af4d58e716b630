"""Sending outbox rows: claim briefly, render from current state, send, record the outcome.

Delivery policy (DESIGN.md §3, at-least-once-safe):
- sent: Telegram answered with a message id.
- skipped: the row no longer makes sense (day answered or closed, patient paused): never sent late.
- unknown: the request may have reached Telegram (read timeout). Not resent; the day's
  follow-up and the patient's buttons still work.
- pending again with backoff: certainly not delivered (connection refused, connect timeout, 5xx).
- failed: Telegram refused for good (403 blocked/deactivated, 400 chat not found): the patient
  becomes unreachable and coordinators get one alert.
- A row found mid-send after a crash is re-queued once and counted in `resends` (the one case
  that can duplicate: the crash fell between Telegram's answer and our commit).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import update
from sqlmodel import col, select
from telegram import Bot
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut

from bot.config import Settings
from bot.db.models import Alert, AlertMessage, Course, DoseDay, Outbox, Patient
from bot.domain.adherence import adherence
from bot.domain.dose import DoseState
from bot.i18n import Translator
from bot.render import coordinator as render_coordinator
from bot.render import patient as render_patient
from bot.services.alerts import raise_alert
from bot.services.audit import audit
from bot.services.runtime import Runtime

log = logging.getLogger("adherence.delivery")

STALE_CLAIM = timedelta(minutes=2)
MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Prepared:
    text: str
    markup: object | None
    protect: bool


@dataclass(frozen=True)
class Skip:
    reason: str


def chat_translator(settings: Settings, chat_id: int, patient: Patient | None) -> Translator:
    if patient is not None and patient.chat_id == chat_id:
        return Translator(patient.locale, patient.timezone)
    for site in settings.sites:
        for coordinator in site.coordinators:
            if coordinator.telegram_id == chat_id:
                return Translator(coordinator.locale, site.tz)
    site = settings.sites[0] if patient is None else settings.site(patient.site_id)
    return Translator("zh_Hans", site.tz)


async def prepare(session, *, settings: Settings, row: Outbox, now: datetime) -> Prepared | Skip:
    patient = await session.get(Patient, row.patient_id) if row.patient_id else None
    t = chat_translator(settings, row.chat_id, patient)
    if row.kind == "alert":
        alert = await session.get(Alert, row.alert_id)
        if alert.acknowledged_at is not None:
            return Skip("alert already acknowledged")
        text, markup = render_coordinator.alert_message(t, settings, alert, escalated=bool(row.payload.get("escalated")))
        return Prepared(text, markup, protect=False)
    if patient is None or patient.status != "active":
        return Skip(f"patient {patient.status if patient else 'missing'}")
    if patient.unreachable:
        return Skip("patient unreachable")
    if row.kind in ("reminder", "followup", "snooze", "late_question"):
        dose = await session.get(DoseDay, row.dose_day_id)
        if row.kind == "late_question":
            if dose.state != DoseState.NOT_REPORTED or now >= dose.late_until:
                return Skip("day already answered or too late to ask")
            text, markup = render_patient.late_question(t, settings, dose)
            return Prepared(text, markup, protect=True)
        if dose.state != DoseState.SCHEDULED:
            return Skip("day already answered")
        if now >= dose.closes_at:
            return Skip("day closed")
        text, markup = render_patient.reminder(t, settings, dose, follow_up=row.kind != "reminder")
        return Prepared(text, markup, protect=True)
    if row.kind in ("course_plan", "course_end"):
        course = await session.get(Course, row.payload["course_id"])
        if course is None or course.status != "active":
            return Skip("course cancelled")
        if row.kind == "course_plan":
            text, markup = render_patient.course_plan(t, settings, course, patient.reminder_time)
        else:
            states = (await session.exec(select(DoseDay.state).where(DoseDay.course_id == course.id))).all()
            text, markup = render_patient.course_end(t, settings, course, adherence(DoseState(s) for s in states))
        return Prepared(text, markup, protect=True)
    return Skip(f"unknown kind {row.kind}")


def _certainly_not_delivered(error: TimedOut) -> bool:
    cause = error.__cause__
    return isinstance(cause, (httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ConnectError))


class Courier:
    def __init__(self, rt: Runtime, bot: Bot, *, worker_id: str, concurrency: int = 16) -> None:
        self.rt = rt
        self.bot = bot
        self.worker_id = worker_id
        self.concurrency = concurrency
        self.sent = 0

    @property
    def _postgres(self) -> bool:
        return self.rt.engine.dialect.name == "postgresql"

    async def recover(self) -> int:
        """Rows left mid-send by a crash: re-queue once, counted in `resends`."""
        now = self.rt.now()
        condition = Outbox.state == "sending"
        if self._postgres:  # other live instances may be sending right now
            condition = condition & (Outbox.claimed_at < now - STALE_CLAIM)
        async with self.rt.session() as session:
            result = await session.exec(update(Outbox).where(condition).values(
                state="pending", resends=Outbox.resends + 1, last_error="interrupted mid-send; delivery unknown"))
            await session.commit()
            return result.rowcount

    async def claim(self, *, lane: str, limit: int) -> list[Outbox]:
        now = self.rt.now()
        async with self.rt.session() as session:
            statement = (select(Outbox).where(Outbox.state == "pending", Outbox.lane == lane, Outbox.due_at <= now)
                         .order_by(col(Outbox.due_at), col(Outbox.id)).limit(limit))
            if self._postgres:
                statement = statement.with_for_update(skip_locked=True)
            rows = list((await session.exec(statement)).all())
            for row in rows:
                row.state, row.claimed_at, row.claimed_by, row.attempts = "sending", now, self.worker_id, row.attempts + 1
                session.add(row)
            await session.commit()
            return rows

    async def drain(self, *, lane: str) -> int:
        """Send everything due in one lane; returns how many rows were handled."""
        handled = 0
        while True:
            rows = await self.claim(lane=lane, limit=self.concurrency)
            if not rows:
                return handled
            await asyncio.gather(*(self.deliver(row) for row in rows))
            handled += len(rows)

    async def _finish(self, row: Outbox, **values) -> None:
        async with self.rt.session() as session:
            await session.exec(update(Outbox).where(Outbox.id == row.id).values(finished_at=self.rt.now(), **values))
            await session.commit()

    async def deliver(self, row: Outbox) -> None:
        try:
            async with self.rt.session() as session:
                prepared = await prepare(session, settings=self.rt.settings, row=row, now=self.rt.now())
            if isinstance(prepared, Skip):
                await self._finish(row, state="skipped", last_error=prepared.reason)
                return
            message = await self.bot.send_message(row.chat_id, prepared.text, reply_markup=prepared.markup,
                                                  protect_content=prepared.protect)
        except RetryAfter as error:
            await self._retry(row, error.retry_after, f"429 retry after {error.retry_after}")
        except Forbidden as error:
            await self._refused(row, error)
        except BadRequest as error:
            if "chat not found" in error.message.lower():
                await self._refused(row, error)
            else:
                await self._finish(row, state="failed", last_error=f"400 {error.message}")
        except TimedOut as error:
            if _certainly_not_delivered(error):
                await self._retry(row, None, "connect timeout")
            else:
                await self._finish(row, state="unknown", last_error="timed out after the request was sent")
        except (NetworkError, TelegramError) as error:
            await self._retry(row, None, f"network: {error.message}")
        else:
            await self._sent(row, message.message_id)

    async def _sent(self, row: Outbox, message_id: int) -> None:
        now = self.rt.now()
        async with self.rt.session() as session:
            await session.exec(update(Outbox).where(Outbox.id == row.id).values(
                state="sent", message_id=message_id, finished_at=now))
            if row.kind == "reminder" and row.dose_day_id:
                await session.exec(update(DoseDay).where(DoseDay.id == row.dose_day_id)
                                   .values(reminder_message_id=message_id))
            if row.kind == "alert":
                session.add(AlertMessage(alert_id=row.alert_id, chat_id=row.chat_id, message_id=message_id, sent_at=now))
            await session.commit()
        self.sent += 1

    async def _retry(self, row: Outbox, retry_after, reason: str) -> None:
        if row.attempts >= MAX_ATTEMPTS:
            await self._finish(row, state="failed", last_error=f"gave up after {row.attempts} attempts: {reason}")
            log.error("event=send_failed outbox_id=%s kind=%s reason=%r", row.id, row.kind, reason)
            return
        if isinstance(retry_after, timedelta):
            delay = retry_after.total_seconds()
        else:
            delay = float(retry_after) if retry_after else min(2 ** row.attempts, 300)
        async with self.rt.session() as session:
            await session.exec(update(Outbox).where(Outbox.id == row.id).values(
                state="pending", due_at=self.rt.now() + timedelta(seconds=delay), last_error=reason))
            await session.commit()

    async def _refused(self, row: Outbox, error: TelegramError) -> None:
        """Blocked, deactivated or gone: stop sending to this patient and tell the team once."""
        now = self.rt.now()
        async with self.rt.session() as session:
            await session.exec(update(Outbox).where(Outbox.id == row.id).values(
                state="failed", finished_at=now, last_error=f"refused: {error.message}"))
            if row.patient_id:
                flipped = await session.exec(update(Patient).where(Patient.id == row.patient_id,
                                                                   Patient.unreachable.is_(False))
                                             .values(unreachable=True))
                if flipped.rowcount == 1:
                    patient = await session.get(Patient, row.patient_id)
                    audit(session, at=now, actor_kind="system", actor_id="courier", action="patient.unreachable",
                          entity="patient", entity_id=patient.subject_id, after={"unreachable": True},
                          reason=error.message)
                    await raise_alert(session, settings=self.rt.settings, now=now, site_id=patient.site_id,
                                      kind="unreachable", patient=patient,
                                      dedupe_key=f"unreachable:{patient.id}:{now.isoformat()}")
            await session.commit()
