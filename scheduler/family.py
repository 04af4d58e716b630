"""Notices to family helpers (issue 14, part 4), advanced to `now` like the rest of the
lifecycle: idempotent (one outbox row per notice and helper, by its dedupe key), nothing at all
while `[helpers]` is off, never in quiet hours (a notice that falls there waits for their end).

- `course_start`: once the patient's course plan has gone out, for a course not yet over.
- `not_reported`: a day that closed as not reported after the helper joined (within a day).
Delivery re-checks everything (scheduler/compose.py): a helper removed meanwhile, a withdrawn
consent or patient, or a day answered late since, and the notice is skipped, never sent.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import String, cast, literal
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.domain.status import CourseStatus, HelperStatus, PatientStatus
from bot.config import Settings
from bot.db.models import Course, DoseDay, Helper, Outbox, Patient
from bot.domain.dose import DoseState
from bot.services.family import COURSE_START, NOT_REPORTED, NOTICE_KIND
from bot.services.outbox import enqueue
from scheduler.companions import BATCH


def _key(what: str, entity_id: int, helper_id: int) -> str:
    return f"helper:{what}:{entity_id}:{helper_id}"


def _not_queued(what: str, entity_id):
    key = literal(f"helper:{what}:", String) + cast(entity_id, String) + literal(":", String) + cast(Helper.id, String)
    return ~select(Outbox.id).where(Outbox.dedupe_key == key).exists()


def _helping():
    return (Helper.status == HelperStatus.ACTIVE, col(Patient.helper_consent_at).is_not(None), Patient.status == PatientStatus.ACTIVE)


async def queue_helper_notices(session: AsyncSession, *, settings: Settings, now: datetime, plan_unsent) -> int:
    if not settings.helpers.enabled:
        return 0
    added = 0
    starting = (await session.exec(
        select(Course, Patient, Helper).join(Patient, Patient.id == Course.patient_id)
        .join(Helper, Helper.patient_id == Patient.id)
        .where(Course.status == CourseStatus.ACTIVE, Course.last_day >= (now - timedelta(days=1)).date(), *_helping(),
               ~plan_unsent(Patient.id), _not_queued(COURSE_START, Course.id))
        .order_by(col(Course.id), col(Helper.id)).limit(BATCH))).all()
    for course, patient, helper in starting:
        added += await enqueue(session, kind=NOTICE_KIND, to=helper.recipient, now=now, patient_id=patient.id,
                               due_at=settings.reminders.quiet_hours.after(now, ZoneInfo(patient.timezone)),
                               payload={"notice": COURSE_START, "helper": helper.id, "course_id": course.id},
                               dedupe_key=_key(COURSE_START, course.id, helper.id))
    unanswered = (await session.exec(
        select(DoseDay, Patient, Helper).join(Patient, Patient.id == DoseDay.patient_id)
        .join(Helper, Helper.patient_id == Patient.id)
        .where(DoseDay.state == DoseState.NOT_REPORTED, DoseDay.out_of_window.is_(False),
               DoseDay.closes_at <= now, DoseDay.closes_at > now - timedelta(days=1),
               DoseDay.closes_at > Helper.joined_at, *_helping(), _not_queued(NOT_REPORTED, DoseDay.id))
        .order_by(col(DoseDay.closes_at), col(Helper.id)).limit(BATCH))).all()
    for dose, patient, helper in unanswered:
        added += await enqueue(session, kind=NOTICE_KIND, to=helper.recipient, now=now, patient_id=patient.id,
                               dose_day_id=dose.id,
                               due_at=settings.reminders.quiet_hours.after(now, ZoneInfo(patient.timezone)),
                               payload={"notice": NOT_REPORTED, "helper": helper.id},
                               dedupe_key=_key(NOT_REPORTED, dose.id, helper.id))
    return added
