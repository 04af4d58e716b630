"""A patient's own settings and status: pause/resume, reminder time, language, status view."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from bot.config import parse_hhmm
from bot.db.models import Course, DoseDay, Patient
from bot.domain.dose import PauseOrigin, may_resume
from bot.domain.schedule import local_due_instant
from bot.services.alerts import close_pause_notices, raise_alert
from bot.services.audit import audit
from bot.services.queries import current_course, dose_days
from bot.services.runtime import Runtime
from bot.services.refusal import Refused


class HoldRefused(Refused):
    """code: team_hold — a patient tried to lift a hold their study team placed (already audited)."""


def pause_origin_of(actor_kind: str) -> PauseOrigin:
    return PauseOrigin.PATIENT if actor_kind == "patient" else PauseOrigin.TEAM


async def set_paused(rt: Runtime, *, patient: Patient, paused: bool, actor_kind: str, actor_id: str | int,
                     reason: str | None = None, update_id: int | None = None) -> Patient:
    """Pause (recording who paused and why) or resume. A patient may lift only their own pause:
    lifting a team hold raises HoldRefused and changes nothing. A staff pause over a patient's
    own pause turns it into a team hold. Every resume tells the site (info alert)."""
    now = rt.now()
    async with rt.session() as session:
        patient = await session.get(Patient, patient.id)
        if patient.status == "withdrawn":
            return patient
        origin = pause_origin_of(actor_kind)
        if paused:
            if patient.status == "paused" and (patient.pause_origin == PauseOrigin.TEAM or origin is PauseOrigin.PATIENT):
                return patient
        elif patient.status != "paused":
            return patient
        elif not may_resume(origin=patient.pause_origin, actor_kind=actor_kind):
            audit(session, at=now, actor_kind=actor_kind, actor_id=actor_id, action="patient.resume_refused",
                  entity="patient", entity_id=patient.subject_id,
                  before={"status": patient.status, "pause_origin": patient.pause_origin},
                  reason="team hold: only the study team may lift it", update_id=update_id)
            await session.commit()
            raise HoldRefused("team_hold", patient.subject_id)
        before = {"status": patient.status, "pause_origin": patient.pause_origin, "pause_reason": patient.pause_reason}
        if paused:
            patient.status, patient.pause_origin, patient.pause_reason, patient.paused_at = (
                "paused", origin.value, (reason or "").strip() or None, now)
        else:
            patient.status, patient.pause_origin, patient.pause_reason, patient.paused_at = "active", None, None, None
        session.add(patient)
        audit(session, at=now, actor_kind=actor_kind, actor_id=actor_id, action="patient.paused" if paused else
              "patient.resumed", entity="patient", entity_id=patient.subject_id, before=before,
              after={"status": patient.status, "pause_origin": patient.pause_origin}, reason=reason,
              update_id=update_id)
        if paused and actor_kind == "patient":
            await raise_alert(session, settings=rt.settings, now=now, site_id=patient.site_id, kind="patient_paused",
                              patient=patient, dedupe_key=f"paused:{patient.id}:{now.isoformat()}", update_id=update_id)
        if not paused:
            await close_pause_notices(session, patient_id=patient.id, now=now)
            await raise_alert(session, settings=rt.settings, now=now, site_id=patient.site_id, kind="patient_resumed",
                              patient=patient, details={"by": actor_kind, "was": before["pause_origin"]},
                              dedupe_key=f"resumed:{patient.id}:{now.isoformat()}", update_id=update_id)
        await session.commit()
    rt.wake()
    return patient


async def change_locale(rt: Runtime, *, patient: Patient, locale: str, update_id: int | None = None) -> Patient:
    async with rt.session() as session:
        patient = await session.get(Patient, patient.id)
        before = patient.locale
        patient.locale = locale
        session.add(patient)
        audit(session, at=rt.now(), actor_kind="patient", actor_id=patient.subject_id, action="patient.locale_changed",
              entity="patient", entity_id=patient.subject_id, before={"locale": before}, after={"locale": locale},
              update_id=update_id)
        await session.commit()
    return patient


async def move_untouched_days(session, *, patient: Patient, now: datetime) -> date | None:
    """Every untouched future day (scheduled, never reminded) moves to the patient's current
    reminder time; a day whose new time has already passed today keeps its old one. The one path
    for /time and for a rebind that brings a new time. Returns the first local date that moved."""
    tz = ZoneInfo(patient.timezone)
    at = parse_hhmm(patient.reminder_time)
    untouched = (await session.exec(select(DoseDay).where(
        DoseDay.patient_id == patient.id, DoseDay.state == "scheduled", col(DoseDay.reminder_queued_at).is_(None)
    ).order_by(col(DoseDay.due_at)))).all()
    first_changed = None
    for dose in untouched:
        due = local_due_instant(dose.local_date, at, tz)
        if due <= now or due >= dose.closes_at or due == dose.due_at:
            continue  # today's new time has already passed (or falls after the day's close): keep today
        dose.due_at = due
        first_changed = first_changed or dose.local_date
        session.add(dose)
    return first_changed


async def change_reminder_time(rt: Runtime, *, patient: Patient, reminder_time: str,
                               update_id: int | None = None) -> date | None:
    """New time applies from the next untouched day (not yet reminded, not answered).
    Returns the first local date that changed, if any."""
    now = rt.now()
    async with rt.session() as session:
        patient = await session.get(Patient, patient.id)
        before = patient.reminder_time
        patient.reminder_time = reminder_time
        session.add(patient)
        first_changed = await move_untouched_days(session, patient=patient, now=now)
        audit(session, at=now, actor_kind="patient", actor_id=patient.subject_id, action="patient.time_changed",
              entity="patient", entity_id=patient.subject_id, before={"reminder_time": before},
              after={"reminder_time": reminder_time, "from": first_changed.isoformat() if first_changed else None},
              update_id=update_id)
        await session.commit()
    rt.wake()
    return first_changed


@dataclass(frozen=True)
class StatusView:
    course: Course | None
    doses: list[DoseDay]
    today: date
    next_due: datetime | None


async def status_view(rt: Runtime, *, patient: Patient) -> StatusView:
    now = rt.now()
    today = now.astimezone(ZoneInfo(patient.timezone)).date()
    async with rt.session() as session:
        course = await current_course(session, patient_id=patient.id, today=today)
        doses = await dose_days(session, course_id=course.id) if course else []
        next_due = (await session.exec(select(DoseDay.due_at).where(
            DoseDay.patient_id == patient.id, DoseDay.state == "scheduled", DoseDay.due_at > now
        ).order_by(col(DoseDay.due_at)).limit(1))).first()
    return StatusView(course=course, doses=doses, today=today, next_due=next_due)
