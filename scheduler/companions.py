"""Due messages of the features around dosing (issue 14), advanced to `now` like the rest of
the lifecycle: idempotent, each queued once through its dedupe key, and nothing at all while the
feature's switch is off.

- `conmed_check` (the prohibited-medicine question): once the course plan has gone out (the
  start-of-course check) and at the reminder instant of the configured mid-course day. Never in
  quiet hours: a check that falls there waits for their end.
- `visit_reminder`: the day before a visit at the patient's reminder time, and `hours_before` it;
  queued up to three days ahead under a key naming the visit's instant, so a moved visit gets new
  reminders (the old ones are skipped at delivery). One that would fall in quiet hours waits for
  their end if that is still before the visit (the day-before one), or is dropped (the other).
- `tablet_count` (tablet accountability): once a course's last day has closed, at the next-morning
  time (`[reminders] next_morning_time`) of the day after it, or at once when that has passed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import String, cast, literal
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.domain.dose import DoseState
from bot.domain.status import CourseStatus, PatientStatus
from bot.config import Settings, parse_hhmm
from bot.db.models import ConmedReport, Course, DoseDay, Outbox, Patient, TabletCount
from bot.services.accountability import COUNT_KIND, count_dedupe_key
from bot.services import visits as visit_service
from bot.db.models import Visit
from bot.domain.schedule import local_due_instant
from bot.services.conmed import CHECK_KIND, MID, START, check_dedupe_key
from bot.services.outbox import enqueue

BATCH = 500
LIVE_DAY_STATES = (DoseState.SCHEDULED, DoseState.TAKEN, DoseState.MISSED)


def _reachable():
    return (Patient.status == PatientStatus.ACTIVE, Patient.unreachable.is_(False), col(Patient.address).is_not(None))


def _not_queued(point: str):
    key = literal(f"{CHECK_KIND}:", String) + cast(Course.id, String) + literal(f":{point}", String)
    return (~select(Outbox.id).where(Outbox.dedupe_key == key).exists(),
            ~select(ConmedReport.id).where(ConmedReport.course_id == Course.id,
                                           ConmedReport.check_point == point).exists())


async def queue_conmed_checks(session: AsyncSession, *, settings: Settings, now: datetime,
                              plan_unsent) -> int:
    if not settings.conmed.enabled:
        return 0
    added = 0
    # Start of course: right after the plan (the plan itself holds everything back until sent).
    starting = (await session.exec(
        select(Course, Patient).join(Patient, Patient.id == Course.patient_id)
        .where(Course.status == CourseStatus.ACTIVE, Course.last_day >= (now - timedelta(days=1)).date(), *_reachable(),
               ~plan_unsent(Patient.id), *_not_queued(START))
        .order_by(col(Course.id)).limit(BATCH))).all()
    for course, patient in starting:
        due = settings.reminders.quiet_hours.after(now, ZoneInfo(patient.timezone))
        added += await enqueue(session, kind=CHECK_KIND, to=patient.recipient, due_at=due, now=now,
                               patient_id=patient.id, payload={"course_id": course.id, "point": START},
                               dedupe_key=check_dedupe_key(course.id, START))
    mid_day = settings.conmed.mid_course_day
    if mid_day:
        middle = (await session.exec(
            select(Course, Patient, DoseDay).join(Patient, Patient.id == Course.patient_id)
            .join(DoseDay, (DoseDay.course_id == Course.id) & (DoseDay.day == mid_day))
            .where(Course.status == CourseStatus.ACTIVE, col(DoseDay.state).in_(LIVE_DAY_STATES),
                   DoseDay.out_of_window.is_(False), DoseDay.due_at <= now, DoseDay.closes_at > now,
                   *_reachable(), ~plan_unsent(Patient.id), *_not_queued(MID))
            .order_by(col(Course.id)).limit(BATCH))).all()
        for course, patient, dose in middle:
            due = settings.reminders.quiet_hours.after(now, ZoneInfo(patient.timezone))
            if due >= dose.closes_at:
                continue
            added += await enqueue(session, kind=CHECK_KIND, to=patient.recipient, due_at=due, now=now,
                                   patient_id=patient.id, dose_day_id=dose.id,
                                   payload={"course_id": course.id, "point": MID},
                                   dedupe_key=check_dedupe_key(course.id, MID))
    return added


async def queue_tablet_counts(session: AsyncSession, *, settings: Settings, now: datetime) -> int:
    if not settings.accountability.enabled:
        return 0
    key = literal(f"{COUNT_KIND}:", String) + cast(Course.id, String)
    rows = (await session.exec(
        select(Course, Patient, DoseDay).join(Patient, Patient.id == Course.patient_id)
        .join(DoseDay, (DoseDay.course_id == Course.id) & (DoseDay.day == settings.trial.course_days))
        .where(Course.status == CourseStatus.ACTIVE, DoseDay.closes_at <= now, DoseDay.closes_at > now - timedelta(days=3),
               *_reachable(), ~select(Outbox.id).where(Outbox.dedupe_key == key).exists(),
               ~select(TabletCount.id).where(TabletCount.course_id == Course.id).exists())
        .order_by(col(Course.id)).limit(BATCH))).all()
    morning = parse_hhmm(settings.reminders.next_morning_time)
    added = 0
    for course, patient, last in rows:
        tz = ZoneInfo(patient.timezone)
        due = settings.reminders.quiet_hours.after(max(local_due_instant(last.local_date + timedelta(days=1), morning, tz), now),
                                tz)
        added += await enqueue(session, kind=COUNT_KIND, to=patient.recipient, due_at=due, now=now,
                               patient_id=patient.id, payload={"course_id": course.id},
                               dedupe_key=count_dedupe_key(course.id))
    return added


async def queue_visit_reminders(session: AsyncSession, *, settings: Settings, now: datetime) -> int:
    if not settings.visits.enabled:
        return 0
    rows = (await session.exec(
        select(Visit, Patient).join(Patient, Patient.id == Visit.patient_id)
        .where(Visit.status == visit_service.SCHEDULED, Visit.at > now, Visit.at <= now + timedelta(days=3),
               *_reachable())
        .order_by(col(Visit.at), col(Visit.id)).limit(BATCH))).all()
    added = 0
    for visit, patient in rows:
        tz = ZoneInfo(patient.timezone)
        local_day = visit.at.astimezone(tz).date()
        day_before = local_due_instant(local_day - timedelta(days=1), parse_hhmm(patient.reminder_time), tz)
        soon = visit.at - timedelta(hours=settings.visits.hours_before)
        for which, due in ((visit_service.DAY_BEFORE, day_before), (visit_service.SOON, soon)):
            if due < now - timedelta(minutes=30) or due >= visit.at:
                continue  # registered too late for this one
            if which == visit_service.SOON:
                if settings.reminders.quiet_hours.contains(due, tz):
                    continue
            else:
                due = settings.reminders.quiet_hours.after(due, tz)
                if due >= visit.at:
                    continue
            added += await enqueue(session, kind=visit_service.REMINDER_KIND, to=patient.recipient,
                                   due_at=max(due, now), now=now, patient_id=patient.id,
                                   payload={"visit_id": visit.id, "which": which, "at": visit.at.isoformat()},
                                   dedupe_key=visit_service.reminder_key(visit, which))
    return added
