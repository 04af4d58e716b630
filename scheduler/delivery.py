"""Sending outbox rows: claim briefly, render from current state, send, record the outcome.

Row states: pending → claimed → sending → sent | unknown | failed | skipped.

- claimed: taken by one worker (PostgreSQL: `FOR UPDATE SKIP LOCKED`), not yet dispatched.
  Safe to hand back: nothing left the process.
- sending: committed right before the request is dispatched (after the flood gate granted
  its slot), so a crash can only be ambiguous for requests actually in flight.

Delivery policy (DESIGN.md §3, at-least-once-safe):
- sent: Telegram answered with a message id.
- skipped: the row no longer makes sense (day answered or closed, patient paused or
  unreachable, alert acknowledged): never sent late. The reason is kept in `last_error`.
- deferred (pending again, later): a follow-up is never sent sooner than the follow-up
  interval after its reminder actually went out (after downtime both may be due at once).
- unknown: the request may have reached Telegram (read timeout, connection lost while waiting
  for the answer). Not resent; the day's follow-up and the patient's buttons still work.
- pending again with backoff: certainly not delivered (connection refused, connect or pool
  timeout, 5xx or any other error answer). 429 waits `retry_after` and does not count as an
  attempt. Retries stop when the row stops making sense or after `GIVE_UP`.
- failed: Telegram refused for good (403 blocked/deactivated, 400 chat not found) → the
  patient becomes unreachable (no further sends) and coordinators get one alert; any other
  400 is a bug in what we sent and is logged as an error.
- A staff chat refused for good is recorded as unreachable; an alert with no reachable recipient
  left escalates at once (`bot.services.alerts.escalate_now`).
- Kinds besides the patient's messages and alert copies: `symptom_advice` (the 120 advice for one
  emergency report, sent by the handler itself and retried from here only if that send failed)
  and `alert_update` (edits a delivered alert copy after the patient added a report).
- Claim order is by `priority` (0: first emergency alerts and patient advice, 1: new, 2: repeats
  and updates), and a row takes an in-flight slot only once the flood gate granted its chat's
  turn, so a queue for one chat never holds up another's emergency.
- A row re-queued after a crash is sent with a first line saying it may be a duplicate ("take
  only one dose today" on dose reminders).
- Crash recovery (`recover`): claimed rows go back to pending untouched; rows found `sending`
  (in flight when the process died) are re-queued once and counted in `resends` — the one
  case that can duplicate: the crash fell between Telegram accepting and our commit. A
  re-queued row is re-checked like any other, so a day answered meanwhile is not reminded.

Outcomes of concurrent sends are committed together (`Recorder`), which is what lets one
process keep up with the flood limits on SQLite as well as PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import bindparam, func, insert, or_, update
from sqlmodel import col, select
from telegram import Bot
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut

from bot.config import Settings
from bot.db.models import (Alert, AlertMessage, ConmedReport, Course, DoseDay, Helper, Outbox, Patient, PatientMessage,
                           TabletCount, Visit)
from bot.domain.adherence import adherence
from bot.domain.dose import DoseState, catch_up_allowed
from bot.i18n import Translator
from bot.render import coordinator as render_coordinator
from bot.render import patient as render_patient
from bot.services.alerts import escalate_now, mark_recipient_unreachable, raise_alert, reachable_recipients
from bot.services.audit import audit
from bot.services.outbox import ALERT_LANE
from bot.services.runtime import Runtime
from bot.services.messages import RELAY_MEDIA_KIND, STAFF_REPLY_KIND
from bot.services.accountability import COUNT_KIND as TABLET_COUNT
from bot.services.visits import REMINDER_KIND as VISIT_REMINDER
from bot.render import visits as render_visits
from bot.services.conmed import CHECK_KIND as CONMED_CHECK
from bot.render import accountability as render_accountability
from bot.services.symptoms import ADVICE_KIND, ALERT_UPDATE_KIND
from bot.render import conmed as render_conmed
from bot.render import family as render_family
from bot.services import family
from scheduler.lifecycle import in_quiet_hours
from scheduler.ownership import alive
from scheduler.ratelimit import (PRIORITY_ALERT, PRIORITY_BULK, AbortTag, SendAborted, SendArgs, TelegramRateLimiter,
                                 retry_after_seconds)

log = logging.getLogger("adherence.delivery")

# PostgreSQL: another live instance may hold claims this long (its batches last seconds).
STALE_CLAIM = timedelta(minutes=5)
GIVE_UP = timedelta(hours=24)
MAX_BACKOFF = 300
LOOK_AGAIN = {True: 0.1, False: 0.5}  # seconds between claims while sends are outstanding (alert lane: True)
IN_FLIGHT = {ALERT_LANE: 4, "normal": 8}  # httpx's pool slows down past ~8 concurrent requests
PATIENT_KINDS = ("reminder", "followup", "snooze", "late_question", "course_plan", "course_end", "catch_up",
                 "course_cancelled", "reminder_close", ADVICE_KIND, STAFF_REPLY_KIND, CONMED_CHECK,
                 TABLET_COUNT, VISIT_REMINDER)
DOSE_KINDS = ("reminder", "followup", "snooze")


@dataclass(frozen=True)
class Prepared:
    text: str
    markup: object | None
    protect: bool
    edit_message_id: int | None = None  # edit this message (close a day's reminder, update an alert)
    copy_from: tuple[int, int] | None = None  # (chat id, message id) to copy instead of sending text


@dataclass(frozen=True)
class Skip:
    reason: str


@dataclass(frozen=True)
class Defer:
    until: datetime
    reason: str


Plan = Prepared | Skip | Defer


@dataclass
class Loaded:
    """What a batch of rows needs to be rendered, fetched in a handful of queries."""

    patients: dict[int, Patient] = field(default_factory=dict)
    doses: dict[int, DoseDay] = field(default_factory=dict)
    alerts: dict[int, Alert] = field(default_factory=dict)
    courses: dict[int, Course] = field(default_factory=dict)
    course_states: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    reminders: dict[int, tuple[str, datetime | None]] = field(default_factory=dict)  # dose id → (state, sent at)
    messages: dict[int, PatientMessage] = field(default_factory=dict)  # staff replies to send
    alert_copies: dict[tuple[int, int], int] = field(default_factory=dict)  # (alert, chat) → latest message id
    copies_in_flight: set[tuple[int, int]] = field(default_factory=set)  # (alert, chat) still being sent
    catch_up_days: dict[int, list[DoseDay]] = field(default_factory=lambda: defaultdict(list))  # course id → days
    conmed_answered: set[tuple[int, str]] = field(default_factory=set)  # (course id, check point) answered
    tablets_counted: set[int] = field(default_factory=set)  # course ids whose tablet count is in
    visits: dict[int, Visit] = field(default_factory=dict)  # visit reminders' visits
    helpers: dict[int, Helper] = field(default_factory=dict)  # helper notices' and helper advice's helpers
    translators: dict[tuple[str, str], Translator] = field(default_factory=dict)

    def translator(self, locale: str, tz: str) -> Translator:
        key = (locale, str(tz))
        if key not in self.translators:
            self.translators[key] = Translator(locale, tz)
        return self.translators[key]


def chat_translator(settings: Settings, chat_id: int, patient: Patient | None,
                    loaded: Loaded | None = None) -> Translator:
    make = loaded.translator if loaded is not None else (lambda locale, tz: Translator(locale, tz))
    if patient is not None and patient.chat_id == chat_id:
        return make(patient.locale, patient.timezone)
    for site in settings.sites:
        for coordinator in site.coordinators:
            if coordinator.telegram_id == chat_id:
                return make(coordinator.locale, site.timezone)
    site = settings.sites[0] if patient is None else settings.site(patient.site_id)
    return make("zh_Hans", site.timezone)


async def load(session, rows: list[Outbox]) -> Loaded:
    loaded = Loaded()

    async def fetch(model, ids):
        ids = {i for i in ids if i is not None}
        if not ids:
            return {}
        return {o.id: o for o in (await session.exec(select(model).where(col(model.id).in_(ids)))).all()}

    loaded.patients = await fetch(Patient, (r.patient_id for r in rows))
    loaded.doses = await fetch(DoseDay, (r.dose_day_id for r in rows))
    loaded.alerts = await fetch(Alert, (r.alert_id for r in rows))
    loaded.messages = await fetch(PatientMessage, (r.payload.get("message_id") for r in rows
                                                   if r.kind == STAFF_REPLY_KIND))
    updating = {r.alert_id for r in rows if r.kind == ALERT_UPDATE_KIND} - {None}
    if updating:
        for alert_id, chat_id, message_id in (await session.exec(
                select(AlertMessage.alert_id, AlertMessage.chat_id, AlertMessage.message_id)
                .where(col(AlertMessage.alert_id).in_(updating)).order_by(col(AlertMessage.id)))).all():
            loaded.alert_copies[(alert_id, chat_id)] = message_id
        loaded.copies_in_flight = set((await session.exec(
            select(Outbox.alert_id, Outbox.chat_id).where(col(Outbox.alert_id).in_(updating), Outbox.kind == "alert",
                                                         col(Outbox.state).in_(["pending", "claimed", "sending"]))
        )).all())
    course_ids = {r.payload.get("course_id") for r in rows
                  if r.kind in ("course_plan", "course_end", "catch_up", "course_cancelled", CONMED_CHECK,
                                TABLET_COUNT, family.NOTICE_KIND)}
    loaded.courses = await fetch(Course, course_ids)
    ending = {r.payload.get("course_id") for r in rows if r.kind == "course_end"} - {None}
    if ending:
        for course_id, state in (await session.exec(select(DoseDay.course_id, DoseDay.state).where(
                col(DoseDay.course_id).in_(ending), DoseDay.out_of_window.is_(False)))).all():
            loaded.course_states[course_id].append(state)
    following = {r.dose_day_id for r in rows if r.kind == "followup"}
    if following:
        for dose_id, state, finished in (await session.exec(
                select(Outbox.dose_day_id, Outbox.state, Outbox.finished_at)
                .where(Outbox.kind == "reminder", col(Outbox.dose_day_id).in_(following)))).all():
            loaded.reminders[dose_id] = (state, finished)
    await _load_course_context(session, rows, loaded)
    checking = {r.payload.get("course_id") for r in rows if r.kind == CONMED_CHECK} - {None}
    if checking:
        loaded.conmed_answered = set((await session.exec(select(ConmedReport.course_id, ConmedReport.check_point)
                                                          .where(col(ConmedReport.course_id).in_(checking)))).all())
    loaded.visits = await fetch(Visit, (r.payload.get("visit_id") for r in rows if r.kind == VISIT_REMINDER))
    loaded.helpers = await fetch(Helper, (r.payload.get("helper") for r in rows
                                          if r.kind in (family.NOTICE_KIND, ADVICE_KIND)))
    counting = {r.payload.get("course_id") for r in rows if r.kind == TABLET_COUNT} - {None}
    if counting:
        loaded.tablets_counted = set((await session.exec(select(TabletCount.course_id).where(
            col(TabletCount.course_id).in_(counting)))).all())
    return loaded


async def _load_course_context(session, rows: list[Outbox], loaded: Loaded) -> None:
    """The days a catch-up question asks about (those not answered since it was queued)."""
    catching_up = {r.payload.get("course_id") for r in rows if r.kind == "catch_up"} - {None}
    if catching_up:
        for dose in (await session.exec(select(DoseDay).where(
                col(DoseDay.course_id).in_(catching_up), DoseDay.state == DoseState.BEFORE_REGISTRATION)
                .order_by(col(DoseDay.local_date)))).all():
            loaded.catch_up_days[dose.course_id].append(dose)


def prepare(loaded: Loaded, *, settings: Settings, row: Outbox, now: datetime) -> Plan:
    """What to do with one claimed row, decided from the current state of its day, patient or alert."""
    plan = _prepare(loaded, settings=settings, row=row, now=now)
    if isinstance(plan, Prepared) and row.resends and row.kind in PATIENT_KINDS and plan.edit_message_id is None:
        patient = loaded.patients.get(row.patient_id) if row.patient_id else None
        marker = _resent_marker(chat_translator(settings, row.chat_id, patient, loaded), row)
        plan = replace(plan, text=marker + plan.text)
    return plan


def _prepare(loaded: Loaded, *, settings: Settings, row: Outbox, now: datetime) -> Plan:
    patient = loaded.patients.get(row.patient_id) if row.patient_id else None
    t = chat_translator(settings, row.chat_id, patient, loaded)
    if row.kind == RELAY_MEDIA_KIND:  # the patient's voice note, photo …, right after its alert
        alert = loaded.alerts.get(row.alert_id)
        if alert is None:
            return Skip("alert missing")
        return Prepared("", None, protect=True,
                        copy_from=(row.payload["from_chat_id"], row.payload["message_id"]))
    if row.kind in ("alert", ALERT_UPDATE_KIND):
        alert = loaded.alerts.get(row.alert_id)
        if alert is None:
            return Skip("alert missing")
        if alert.acknowledged_at is not None:
            return Skip("alert already acknowledged")
        target = None
        if row.kind == ALERT_UPDATE_KIND:
            target = loaded.alert_copies.get((alert.id, row.chat_id))
            if target is None:
                if (alert.id, row.chat_id) in loaded.copies_in_flight:
                    return Defer(now + timedelta(seconds=1), "alert copy still being sent")
                return Skip("no copy of the alert in this chat")
        text, markup = render_coordinator.alert_message(t, settings, alert, escalated=bool(row.payload.get("escalated")),
                                                        repeat=int(row.payload.get("round") or 0)
                                                        if row.kind == "alert" else 0)
        return Prepared(text, markup, protect=False, edit_message_id=target)
    if row.kind == STAFF_REPLY_KIND:  # an answer to what the patient sent: even while reminders are paused
        message = loaded.messages.get(row.payload.get("message_id"))
        if patient is None or message is None or patient.status == "withdrawn" or patient.chat_id != row.chat_id:
            return Skip("patient withdrawn, moved or missing")
        return Prepared(render_patient.staff_reply(t, message.text or ""), None, protect=True)
    if row.kind == ADVICE_KIND and row.payload.get("helper"):  # advice to the helper who reported
        helper = loaded.helpers.get(row.payload["helper"])
        if patient is None or helper is None or helper.chat_id != row.chat_id:
            return Skip("helper missing")
        return Prepared(render_patient.emergency_advice(loaded.translator(helper.locale, patient.timezone),
                                                        settings.site(patient.site_id)), None, protect=False)
    if row.kind == ADVICE_KIND:  # emergency advice: whatever the patient's status, as long as we can reach them
        if patient is None or patient.chat_id != row.chat_id:
            return Skip("patient missing or moved to another chat")
        return Prepared(render_patient.emergency_advice(t, settings.site(patient.site_id)), None, protect=False)
    if row.kind == family.NOTICE_KIND:
        return _prepare_helper_notice(loaded, settings=settings, row=row, patient=patient)
    if row.kind in ("reminder_close", "course_cancelled"):
        return _prepare_course_news(loaded, settings=settings, row=row, patient=patient, t=t)
    if patient is None or patient.status != "active":
        return Skip(f"patient {patient.status if patient else 'missing'}")
    if patient.unreachable:
        return Skip("patient unreachable")
    if row.kind == "catch_up":
        course = loaded.courses.get(row.payload.get("course_id"))
        days = [d for d in loaded.catch_up_days.get(row.payload.get("course_id"), [])
                if catch_up_allowed(closes_at=d.closes_at, now=now)]
        if course is None or course.status != "active" or not days:
            return Skip("nothing to ask about")
        text, markup = render_patient.catch_up_question(t, settings, days)
        return Prepared(text, markup, protect=True)
    if row.kind in ("reminder", "followup", "snooze", "late_question"):
        dose = loaded.doses.get(row.dose_day_id)
        if dose is None:
            return Skip("dose day missing")
        if row.kind == "late_question":
            if dose.state != DoseState.NOT_REPORTED:
                return Skip(f"day already {dose.state}")
            if now >= dose.late_until:
                return Skip("too late to ask about the day")
            text, markup = render_patient.late_question(t, settings, dose)
            return Prepared(text, markup, protect=True)
        if dose.state == DoseState.NOT_REPORTED or (dose.state == DoseState.SCHEDULED and now >= dose.closes_at):
            return Skip("day closed before it could be sent")
        if dose.state != DoseState.SCHEDULED:
            return Skip(f"day already answered ({dose.state})")
        if row.kind == "followup":
            deferred = _follow_up_too_soon(loaded, settings=settings, row=row, dose=dose, patient=patient, now=now)
            if deferred is not None:
                return deferred
        text, markup = render_patient.reminder(t, settings, dose, follow_up=row.kind != "reminder")
        return Prepared(text, markup, protect=True)
    if row.kind == CONMED_CHECK:
        return _prepare_conmed(loaded, settings=settings, row=row, t=t)
    if row.kind == VISIT_REMINDER:
        visit = loaded.visits.get(row.payload.get("visit_id"))
        if not settings.visits.enabled:
            return Skip("visit reminders switched off")
        if visit is None or visit.status != "scheduled":
            return Skip(f"visit {visit.status if visit else 'missing'}")
        if row.payload.get("at") != visit.at.isoformat():
            return Skip("visit moved")
        if now >= visit.at:
            return Skip("visit time passed")
        text, markup = render_visits.reminder(t, settings, settings.site(patient.site_id), visit,
                                              row.payload.get("which"))
        return Prepared(text, markup, protect=True)
    if row.kind == TABLET_COUNT:
        course = loaded.courses.get(row.payload.get("course_id"))
        if not settings.accountability.enabled:
            return Skip("tablet accountability switched off")
        if course is None or course.status != "active":
            return Skip("course cancelled")
        if course.id in loaded.tablets_counted:
            return Skip("already answered")
        text, markup = render_accountability.question(t, settings, course.id, course.cycle)
        return Prepared(text, markup, protect=True)
    if row.kind in ("course_plan", "course_end"):
        course = loaded.courses.get(row.payload.get("course_id"))
        if course is None or course.status != "active":
            return Skip("course cancelled")
        if row.kind == "course_plan":
            text, markup = render_patient.course_plan(t, settings, course, patient.reminder_time,
                                                      was=row.payload.get("was"))
        else:
            states = loaded.course_states.get(course.id, [])
            text, markup = render_patient.course_end(t, settings, course, adherence(DoseState(s) for s in states))
        return Prepared(text, markup, protect=True)
    return Skip(f"unknown kind {row.kind}")


def _prepare_helper_notice(loaded: Loaded, *, settings: Settings, row: Outbox, patient: Patient | None) -> Plan:
    """A family helper's notice (or the patient's notice that a helper joined): only while the
    feature is on, the patient active and consenting, and the helper still bound."""
    notice, helper = row.payload.get("notice"), loaded.helpers.get(row.payload.get("helper"))
    if not settings.helpers.enabled:
        return Skip("helpers switched off")
    if patient is None or patient.status != "active" or patient.unreachable:
        return Skip(f"patient {patient.status if patient else 'missing'}")
    if helper is None or helper.status != family.ACTIVE or patient.helper_consent_at is None:
        return Skip("helper removed or consent withdrawn")
    if notice == family.JOINED:
        if patient.chat_id != row.chat_id:
            return Skip("patient moved to another chat")
        t = loaded.translator(patient.locale, patient.timezone)
        return Prepared(render_family.joined_notice(t, helper.helper_id), None, protect=True)
    if helper.chat_id != row.chat_id:
        return Skip("helper moved")
    t = loaded.translator(helper.locale, patient.timezone)
    if notice == family.COURSE_START:
        course = loaded.courses.get(row.payload.get("course_id"))
        if course is None or course.status != "active":
            return Skip("course cancelled")
        return Prepared(render_family.course_start(t, settings, course), None, protect=True)
    dose = loaded.doses.get(row.dose_day_id)
    if notice != family.NOT_REPORTED or dose is None or dose.state != DoseState.NOT_REPORTED:
        return Skip("day answered since")
    return Prepared(render_family.not_reported(t, settings, dose.local_date), None, protect=True)


def _prepare_conmed(loaded: Loaded, *, settings: Settings, row: Outbox, t: Translator) -> Plan:
    """The prohibited-medicine question: only while the feature is on, its course is live and
    that check has not been answered."""
    course_id, point = row.payload.get("course_id"), row.payload.get("point")
    course = loaded.courses.get(course_id)
    if not settings.conmed.enabled:
        return Skip("prohibited-medicine check switched off")
    if course is None or course.status != "active":
        return Skip("course cancelled")
    if (course_id, point) in loaded.conmed_answered:
        return Skip("already answered")
    text, markup = render_conmed.question(t, settings, course_id, point)
    return Prepared(text, markup, protect=True)


def _resent_marker(t: Translator, row: Outbox) -> str:
    """A row re-queued after a crash left its send in doubt may be a duplicate: say so first."""
    if not row.resends:
        return ""
    if row.kind in DOSE_KINDS:
        return "⚠ " + t._("You may have received this already. Take only one dose today.") + "\n\n"
    return "⚠ " + t._("You may have received this message already.") + "\n\n"


def _prepare_course_news(loaded: Loaded, *, settings: Settings, row: Outbox, patient: Patient | None,
                         t: Translator) -> Plan:
    """Closing a day's reminder (an edit) and telling the patient a course was cancelled: also
    while reminders are paused (a held day's buttons must go too), never after withdrawal."""
    if patient is None or patient.status == "withdrawn" or patient.unreachable:
        return Skip(f"patient {patient.status if patient else 'missing'}")
    if row.kind == "course_cancelled":
        course = loaded.courses.get(row.payload.get("course_id"))
        if course is None:
            return Skip("course missing")
        text, markup = render_patient.cancelled_course(t, settings, course)
        return Prepared(text, markup, protect=True)
    dose = loaded.doses.get(row.dose_day_id)
    if dose is None or not row.payload.get("message_id"):
        return Skip("nothing to close")
    text, _ = render_patient.closed_reminder(t, settings, dose)
    return Prepared(text, None, protect=True, edit_message_id=int(row.payload["message_id"]))


def _follow_up_too_soon(loaded: Loaded, *, settings: Settings, row: Outbox, dose: DoseDay, patient: Patient,
                        now: datetime) -> Plan | None:
    """A follow-up goes out `k` intervals after its reminder really did, not after it was due."""
    state, sent_at = loaded.reminders.get(dose.id, ("missing", None))
    gap = timedelta(minutes=settings.reminders.followup_minutes * int(row.payload.get("k", 1)))
    if state in ("pending", "claimed", "sending"):
        until = now + gap
    elif state == "sent" and sent_at is not None and now < sent_at + gap - timedelta(seconds=1):
        until = sent_at + gap
    else:
        return None  # reminder unknown, skipped or failed: the follow-up is the safety net
    if until >= dose.closes_at or in_quiet_hours(settings, until, ZoneInfo(patient.timezone)):
        return Skip("no time left for a follow-up after the late reminder")
    return Defer(until, "follow-up moved after its late reminder")


def _uncertain(error: TelegramError) -> bool:
    """Whether the request may have reached Telegram although we got no answer."""
    cause = error.__cause__
    return isinstance(cause, (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError))


@dataclass(frozen=True)
class _Edited:
    message_id: int


class ClaimLost(SendAborted):
    """The row is no longer claimed by us (recovered by another instance): do not send it."""


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
                update(Outbox).where(col(Outbox.id).in_([i for i, _ in marks]), Outbox.state == "claimed",
                                     Outbox.claimed_by == self.worker_id)
                .values(state="sending", attempts=Outbox.attempts + 1).returning(Outbox.id))
            marked = set(result.scalars().all())
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        message_ids, alert_messages = [], []
        for row, values, _ in outcomes:
            groups[tuple(sorted(values))].append({"row_id": row.id, **{f"v_{k}": v for k, v in values.items()}})
            if values.get("state") == "sent":
                if row.kind == "reminder" and row.dose_day_id:
                    message_ids.append({"dose_id": row.dose_day_id, "message_id": values["message_id"]})
                if row.kind == "alert":
                    alert_messages.append(dict(alert_id=row.alert_id, chat_id=row.chat_id,
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


class Courier:
    def __init__(self, rt: Runtime, bot: Bot, *, worker_id: str, in_flight: int | None = None,
                 batch: int | None = None) -> None:
        self.rt = rt
        self.bot = bot
        self.worker_id = worker_id
        self.recorder = Recorder(rt, worker_id=worker_id)
        self._holding: set[int] = set()  # rows this courier has claimed and not yet settled
        # Claims and orphan recovery never interleave: recovery reads `_holding` and the table
        # as of one moment, so a row claimed meanwhile is never mistaken for an orphan.
        self._claims = asyncio.Lock()
        rate = rt.settings.delivery.global_per_second
        self.batch = batch or max(16, min(256, int(rate * 2)))
        self._in_flight_sizes = {ALERT_LANE: IN_FLIGHT[ALERT_LANE], "normal": in_flight or IN_FLIGHT["normal"]}
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._gated = isinstance(getattr(bot, "rate_limiter", None), TelegramRateLimiter)
        self._tags: set[AbortTag] = set()
        self.stopping = False
        self.sent = 0
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
        async with self._claims, self.rt.session() as session:
            busy = or_(Outbox.state == "claimed", Outbox.state == "sending")
            if startup and not self._postgres:
                condition = busy
            else:
                owners = (await session.exec(select(Outbox.claimed_by).where(busy).distinct())).all()
                dead = [o for o in owners if o and o != self.worker_id and not alive(o)]
                condition = busy & (
                    col(Outbox.claimed_by).in_(dead)
                    | ((Outbox.claimed_at < now - STALE_CLAIM) & (Outbox.claimed_by != self.worker_id))
                    | ((Outbox.claimed_by == self.worker_id) & col(Outbox.id).not_in(self._holding or {0})))
            released = await session.exec(update(Outbox).where(condition, Outbox.state == "claimed")
                                           .values(state="pending"))
            requeued = await session.exec(update(Outbox).where(condition, Outbox.state == "sending").values(
                state="pending", resends=Outbox.resends + 1, last_error="interrupted in flight; delivery unknown"))
            await session.commit()
            return released.rowcount, requeued.rowcount

    async def claim(self, *, lane: str, limit: int) -> list[Outbox]:
        """Claim due rows in one statement (a write from the start: no lock upgrade on SQLite)."""
        now = self.rt.now()
        due = (select(Outbox.id).where(Outbox.state == "pending", Outbox.lane == lane, Outbox.due_at <= now)
               .order_by(col(Outbox.priority), col(Outbox.due_at), col(Outbox.id)).limit(limit))
        if self._postgres:
            due = due.with_for_update(skip_locked=True)
        async with self._claims, self.rt.session() as session:
            result = await session.exec(
                update(Outbox).where(col(Outbox.id).in_(due.scalar_subquery()))
                .values(state="claimed", claimed_at=now, claimed_by=self.worker_id)
                .returning(Outbox))
            rows = list(result.scalars().all())
            self._holding.update(r.id for r in rows)
            await session.commit()
        rows.sort(key=lambda r: (r.priority, r.due_at, r.id))
        return rows

    async def plan(self, rows: list[Outbox]) -> list[tuple[Outbox, Plan | Exception]]:
        now = self.rt.now()
        async with self.rt.session() as session:
            loaded = await load(session, rows)
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
        move on; `starved` says the due rows are running out."""
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
        try:
            while not self.stopping:
                if len(tasks) > low_water:
                    room.clear()
                    await room.wait()
                    continue
                if between is not None:
                    await between(starved)
                wanted = self.batch - len(tasks)
                rows = await self.claim(lane=lane, limit=wanted)
                starved = len(rows) < wanted
                if not rows:
                    if not tasks:
                        break
                    # Look again as soon as one finishes, or shortly: rows waiting for one chat's
                    # 1/s must not keep a new emergency for another chat unclaimed.
                    await asyncio.wait(set(tasks), timeout=LOOK_AGAIN[lane == ALERT_LANE],
                                       return_when=asyncio.FIRST_COMPLETED)
                    continue
                handled += len(rows)
                for row, plan in await self.plan(rows):
                    task = asyncio.create_task(self.deliver(row, plan, tag))
                    tasks.add(task)
                    task.add_done_callback(finished)
        finally:
            if tasks:
                if self.stopping:
                    tag.abort()
                await asyncio.gather(*tasks, return_exceptions=True)
            self._tags.discard(tag)
        return handled

    def _slot(self, lane: str) -> asyncio.Semaphore:
        if lane not in self._slots:
            self._slots[lane] = asyncio.Semaphore(self._in_flight_sizes.get(lane, IN_FLIGHT["normal"]))
        return self._slots[lane]

    async def deliver(self, row: Outbox, plan: Plan | Exception, tag: AbortTag | None = None) -> None:
        try:
            await self._deliver(row, plan, tag)
        finally:
            self._holding.discard(row.id)

    async def _deliver(self, row: Outbox, plan: Plan | Exception, tag: AbortTag | None) -> None:
        now = self.rt.now()
        if isinstance(plan, Exception):
            log.error("event=render_failed outbox_id=%s kind=%s error=%r", row.id, row.kind, plan)
            await self.recorder.outcome(row, state="failed", finished_at=now, last_error=f"render: {plan!r}"[:500])
            return
        if isinstance(plan, Skip):
            await self.recorder.outcome(row, state="skipped", finished_at=now, last_error=plan.reason)
            return
        if isinstance(plan, Defer):
            await self.recorder.outcome(row, state="pending", due_at=plan.until, last_error=plan.reason)
            return
        dispatched = False
        slot = self._slot(row.lane)
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

        try:
            if self.stopping or (tag is not None and tag.aborted):
                raise SendAborted
            if self._gated:
                # Within the alert lane, a first emergency before new alerts before repeats.
                priority = PRIORITY_ALERT + row.priority / 10 if row.lane == ALERT_LANE else PRIORITY_BULK
                args = {"rate_limit_args": SendArgs(priority=priority, on_dispatch=on_dispatch, tag=tag)}
            else:
                await on_dispatch()
                args = {}
            try:
                if plan.copy_from is not None:
                    message = await self.bot.copy_message(row.chat_id, plan.copy_from[0], plan.copy_from[1],
                                                          protect_content=plan.protect, **args)
                elif plan.edit_message_id is not None:
                    message = await self._edit(row, plan, args)
                else:
                    message = await self.bot.send_message(row.chat_id, plan.text, reply_markup=plan.markup,
                                                          protect_content=plan.protect, **args)
            finally:
                if holding_slot:
                    slot.release()
        except ClaimLost:
            log.warning("event=claim_lost outbox_id=%s", row.id)
        except SendAborted:
            await self.recorder.outcome(row, state="pending")
        except RetryAfter as error:
            delay = retry_after_seconds(error)
            await self._retry(row, delay, f"429 retry after {delay:g}", counts=False)
        except Forbidden as error:
            await self._refused(row, error)
        except BadRequest as error:
            if "chat not found" in error.message.lower():
                await self._refused(row, error)
            else:
                log.error("event=send_rejected outbox_id=%s kind=%s error=%r", row.id, row.kind, error.message)
                await self.recorder.outcome(row, state="failed", finished_at=self.rt.now(),
                                            last_error=f"400 {error.message}")
        except (TimedOut, NetworkError) as error:
            if _uncertain(error):
                log.warning("event=send_unknown outbox_id=%s kind=%s error=%r", row.id, row.kind, error.message)
                await self.recorder.outcome(row, state="unknown", finished_at=self.rt.now(),
                                            last_error=f"no answer after the request was sent: {error.message}")
            else:
                await self._retry(row, None, f"not delivered: {error.message}")
        except TelegramError as error:
            await self._retry(row, None, f"telegram: {error.message}")
        except Exception as error:
            log.exception("event=send_crashed outbox_id=%s kind=%s", row.id, row.kind)
            if dispatched:  # the answer may have been lost in our own code
                await self.recorder.outcome(row, state="unknown", finished_at=self.rt.now(),
                                            last_error=f"error after dispatch: {error!r}"[:500])
            else:
                await self._retry(row, None, f"error before dispatch: {error!r}"[:500])
        else:
            self.sent += 1
            await self.recorder.outcome(row, state="sent", message_id=message.message_id, finished_at=self.rt.now())

    async def _edit(self, row: Outbox, plan: Prepared, args: dict):
        """Edit an earlier message in place. One that would not change, or can no longer be edited
        (deleted, too old), is done: the buttons it carries are refused by the handlers anyway."""
        try:
            result = await self.bot.edit_message_text(plan.text, chat_id=row.chat_id,
                                                      message_id=plan.edit_message_id, reply_markup=plan.markup,
                                                      **args)
        except BadRequest as error:
            if "chat not found" in error.message.lower():
                raise
            log.info("event=edit_not_applied outbox_id=%s reason=%r", row.id, error.message)
            return _Edited(plan.edit_message_id)
        return result if hasattr(result, "message_id") else _Edited(plan.edit_message_id)

    async def _retry(self, row: Outbox, delay: float | None, reason: str, *, counts: bool = True) -> None:
        now = self.rt.now()
        if now - row.created_at > GIVE_UP:
            log.error("event=send_failed outbox_id=%s kind=%s attempts=%d reason=%r", row.id, row.kind,
                      row.attempts, reason)
            await self.recorder.outcome(row, state="failed", finished_at=now, last_error=f"gave up: {reason}")
            return
        if delay is None:
            delay = min(2 ** max(row.attempts, 1), MAX_BACKOFF)
        values: dict[str, Any] = {"state": "pending", "due_at": now + timedelta(seconds=delay), "last_error": reason}
        if not counts:
            values["attempts"] = max(row.attempts - 1, 0)
        await self.recorder.outcome(row, **values)

    async def _refused(self, row: Outbox, error: TelegramError) -> None:
        """Blocked, deactivated or gone: stop sending to this patient and tell the team once."""
        now = self.rt.now()
        raised = False
        async with self.rt.session() as session:
            await session.exec(update(Outbox).where(Outbox.id == row.id).values(
                state="failed", finished_at=now, last_error=f"refused: {error.message}"))
            patient = await session.get(Patient, row.patient_id) if row.patient_id else None
            if row.payload.get("helper") and not (patient is not None and patient.chat_id == row.chat_id):
                pass  # a family helper's chat: the notice is lost, the helper stays as the patient set it
            elif patient is not None and patient.chat_id == row.chat_id:
                flipped = await session.exec(update(Patient).where(Patient.id == patient.id,
                                                                   Patient.unreachable.is_(False))
                                             .values(unreachable=True))
                if flipped.rowcount == 1:
                    audit(session, at=now, actor_kind="system", actor_id="courier", action="patient.unreachable",
                          entity="patient", entity_id=patient.subject_id, after={"unreachable": True},
                          reason=error.message)
                    raised = await raise_alert(session, settings=self.rt.settings, now=now, site_id=patient.site_id,
                                               kind="unreachable", patient=patient,
                                               dedupe_key=f"unreachable:{patient.id}:{now.isoformat()}") is not None
            else:  # a coordinator, alert chat or escalation contact: every alert still needs a person
                await mark_recipient_unreachable(session, settings=self.rt.settings, chat_id=row.chat_id, now=now,
                                                 error=error.message)
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
