"""Patients. Their own settings and status (pause/resume, reminder time, language, status view),
the site's patients as a coordinator sees them, and what a coordinator may do to one: pause,
resume, withdraw (stops every message, keeps every record), issue a rebind link, correct a day."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from bot.domain.alerts import AlertKind
from bot.domain.status import CourseStatus, PatientStatus
from bot.config import parse_hhmm
from bot.db.models import Alert, Course, DoseDay, DoseEvent, Patient, PatientMessage, SymptomReport
from bot.domain.adherence import EMPTY, Adherence, adherence, combine
from bot.domain.dose import AnswerSource, DoseRuleError, DoseState, PauseOrigin, correct_dose, has_reason, may_resume
from bot.domain.schedule import course_day_number, local_due_instant
from bot.services import accountability, family, invitations, visits
from bot.services.alerts import close_pause_notices, needs_action, raise_alert
from bot.services.audit import audit
from bot.services.coord_access import Actor, patient_in_reach
from bot.services.courses import remove_untouched_days
from bot.services.doses import close_reminder_messages
from bot.services.invitations import expiry_days
from bot.services.messages import messages_for
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
        if patient.status == PatientStatus.WITHDRAWN:
            return patient
        origin = pause_origin_of(actor_kind)
        if paused:
            if patient.status == PatientStatus.PAUSED and (patient.pause_origin == PauseOrigin.TEAM or origin is PauseOrigin.PATIENT):
                return patient
        elif patient.status != PatientStatus.PAUSED:
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
                PatientStatus.PAUSED, origin.value, (reason or "").strip() or None, now)
        else:
            patient.status, patient.pause_origin, patient.pause_reason, patient.paused_at = PatientStatus.ACTIVE, None, None, None
        session.add(patient)
        audit(session, at=now, actor_kind=actor_kind, actor_id=actor_id, action="patient.paused" if paused else
              "patient.resumed", entity="patient", entity_id=patient.subject_id, before=before,
              after={"status": patient.status, "pause_origin": patient.pause_origin}, reason=reason,
              update_id=update_id)
        if paused and actor_kind == "patient":
            await raise_alert(session, settings=rt.settings, now=now, site_id=patient.site_id, kind=AlertKind.PATIENT_PAUSED,
                              patient=patient, dedupe_key=f"paused:{patient.id}:{now.isoformat()}", update_id=update_id)
        if not paused:
            await close_pause_notices(session, patient_id=patient.id, now=now)
            await raise_alert(session, settings=rt.settings, now=now, site_id=patient.site_id, kind=AlertKind.PATIENT_RESUMED,
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
        DoseDay.patient_id == patient.id, DoseDay.state == DoseState.SCHEDULED, col(DoseDay.reminder_queued_at).is_(None)
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
            DoseDay.patient_id == patient.id, DoseDay.state == DoseState.SCHEDULED, DoseDay.due_at > now
        ).order_by(col(DoseDay.due_at)).limit(1))).first()
    return StatusView(course=course, doses=doses, today=today, next_due=next_due)


# --- the study team's view and actions ------------------------------------------------------

STATUSES = ("enrolled", "on_course", "between", "paused", "held", "unreachable", "withdrawn")


class PatientActionRefused(Refused):
    """code: withdrawn | reason_required | unchanged | bad_state | no_day | day_open"""


@dataclass(frozen=True)
class PatientRow:
    subject_id: str
    site_id: str
    status: str  # one of STATUSES
    cycle: int | None  # the current course (running, else next, else last)
    day: int | None  # course day today, when on course
    states: list[str]  # the current course's days, in order
    so_far: Adherence  # all active courses
    open_alerts: int


def status_of(patient: Patient, courses: list[Course], today: date) -> str:
    if patient.status == PatientStatus.WITHDRAWN:
        return "withdrawn"
    if patient.unreachable:
        return "unreachable"
    if patient.status == PatientStatus.PAUSED:
        return "held" if patient.pause_origin == PauseOrigin.TEAM else "paused"
    if any(c.first_day <= today <= c.last_day for c in courses):
        return "on_course"
    return "between" if courses else "enrolled"


def current_of(courses: list[Course], today: date) -> Course | None:
    """Running today, else the next one, else the last one (as the patient's /status shows)."""
    running = [c for c in courses if c.first_day <= today <= c.last_day]
    upcoming = [c for c in courses if c.first_day > today]
    return (running or upcoming or courses[-1:] or [None])[0]


async def _load(session, patient_ids: list[int]):
    if not patient_ids:
        return {}, {}, {}
    courses = (await session.exec(select(Course).where(col(Course.patient_id).in_(patient_ids),
                                                        Course.status == CourseStatus.ACTIVE).order_by(col(Course.cycle)))).all()
    # The course's days as they count: cancelled days are no dose days, out-of-window days are
    # kept records outside the course (shown apart on the card).
    doses = (await session.exec(select(DoseDay).where(col(DoseDay.patient_id).in_(patient_ids),
                                                      DoseDay.state != "cancelled", DoseDay.out_of_window.is_(False))
                                .order_by(col(DoseDay.cycle), col(DoseDay.day)))).all()
    alerts = (await session.exec(select(Alert.patient_id).where(col(Alert.patient_id).in_(patient_ids),
                                                                col(Alert.acknowledged_at).is_(None),
                                                                needs_action()))).all()
    by_patient: dict[int, list[Course]] = defaultdict(list)
    for course in courses:
        by_patient[course.patient_id].append(course)
    by_course: dict[int, list[DoseDay]] = defaultdict(list)
    for dose in doses:
        by_course[dose.course_id].append(dose)
    open_alerts: dict[int, int] = defaultdict(int)
    for patient_id in alerts:
        open_alerts[patient_id] += 1
    return by_patient, by_course, open_alerts


def _row(patient: Patient, courses: list[Course], by_course: dict, open_alerts: int, today: date) -> PatientRow:
    current = current_of(courses, today)
    states = [d.state for d in by_course.get(current.id, [])] if current else []
    day = None
    if current is not None and current.first_day <= today <= current.last_day:
        day = course_day_number(current.first_day, today)
    so_far = combine(adherence(d.state for d in by_course.get(c.id, [])) for c in courses) if courses else EMPTY
    return PatientRow(patient.subject_id, patient.site_id, status_of(patient, courses, today),
                      current.cycle if current else None, day, states, so_far, open_alerts)


async def overview(rt: Runtime, actor: Actor, *, site_id: str | None = None) -> list[PatientRow]:
    now = rt.now()
    async with rt.session() as session:
        statement = select(Patient).order_by(col(Patient.subject_id))
        rows = [p for p in (await session.exec(statement)).all()
                if actor.may(p.site_id) and (site_id is None or p.site_id == site_id)]
        by_patient, by_course, open_alerts = await _load(session, [p.id for p in rows])
    return [_row(p, by_patient.get(p.id, []), by_course, open_alerts.get(p.id, 0),
                 now.astimezone(ZoneInfo(p.timezone)).date()) for p in rows]


@dataclass(frozen=True)
class CourseView:
    course: Course
    doses: list[DoseDay]
    counts: Adherence


@dataclass(frozen=True)
class PatientDetail:
    patient: Patient
    row: PatientRow
    courses: list[CourseView]
    cancelled: list[Course]
    reports: list[SymptomReport]
    alerts: list[Alert] = field(default_factory=list)
    out_of_window: list[DoseDay] = field(default_factory=list)
    messages: list[PatientMessage] = field(default_factory=list)  # latest, both ways, oldest first
    tablets: list = field(default_factory=list)  # bot.services.accountability.Balance per course
    visits: list = field(default_factory=list)  # upcoming visits and past ones not confirmed as attended
    now: datetime | None = None
    helpers: list = field(default_factory=list)  # family helpers bound now (only with [helpers] on)


async def detail(rt: Runtime, actor: Actor, *, subject_id: str, update_id: int | None = None,
                 report_limit: int = 10, what: str = "patient") -> PatientDetail:
    now = rt.now()
    async with rt.session() as session:
        patient = await patient_in_reach(session, rt, actor, subject_id=subject_id, what=what, update_id=update_id)
        by_patient, by_course, open_alerts = await _load(session, [patient.id])
        cancelled = (await session.exec(select(Course).where(Course.patient_id == patient.id,
                                                             Course.status != CourseStatus.ACTIVE))).all()
        reports = (await session.exec(select(SymptomReport).where(SymptomReport.patient_id == patient.id)
                                      .order_by(col(SymptomReport.reported_at).desc()).limit(report_limit))).all()
        alerts = (await session.exec(select(Alert).where(Alert.patient_id == patient.id,
                                                         col(Alert.acknowledged_at).is_(None), needs_action())
                                     .order_by(col(Alert.created_at)))).all()
        outside = (await session.exec(select(DoseDay).where(DoseDay.patient_id == patient.id,
                                                            DoseDay.out_of_window.is_(True))
                                      .order_by(col(DoseDay.local_date)))).all()
        latest = await messages_for(session, patient_id=patient.id)
        tablets = await accountability.balances(session, settings=rt.settings, patient_id=patient.id) \
            if rt.settings.accountability.enabled else []
        visit_rows = await visits.for_patient(session, patient=patient, now=now) if rt.settings.visits.enabled else []
        helpers = await family.helpers_of(session, patient_id=patient.id) if rt.settings.helpers.enabled else []
    today = now.astimezone(ZoneInfo(patient.timezone)).date()
    courses = by_patient.get(patient.id, [])
    views = [CourseView(c, by_course.get(c.id, []), adherence(d.state for d in by_course.get(c.id, [])))
             for c in courses]
    return PatientDetail(patient, _row(patient, courses, by_course, open_alerts.get(patient.id, 0), today), views,
                         list(cancelled), list(reports), list(alerts), list(outside), latest, tablets,
                         visit_rows, now, helpers)


async def set_paused_by_staff(rt: Runtime, actor: Actor, *, subject_id: str, paused: bool, reason: str | None = None,
                              update_id: int | None = None) -> Patient:
    """A team hold (needs a reason; only staff lift it) or lifting any pause (the site is told)."""
    async with rt.session() as session:
        patient = await patient_in_reach(session, rt, actor, subject_id=subject_id,
                                         what="pause" if paused else "resume", update_id=update_id)
    if patient.status == PatientStatus.WITHDRAWN:
        raise PatientActionRefused("withdrawn")
    if paused and patient.status == PatientStatus.PAUSED and patient.pause_origin == PauseOrigin.TEAM:
        raise PatientActionRefused("unchanged")
    if paused and not has_reason(reason):
        raise PatientActionRefused("reason_required")  # a team hold says why (e.g. "physician: hold study drug")
    if not paused and patient.status == PatientStatus.ACTIVE:
        raise PatientActionRefused("unchanged")
    return await set_paused(rt, patient=patient, paused=paused, actor_kind=actor.kind, actor_id=actor.id,
                            reason=reason, update_id=update_id)


async def withdraw(rt: Runtime, actor: Actor, *, subject_id: str, reason: str,
                   update_id: int | None = None) -> Patient:
    """No more messages of any kind; every record stays. Future days that were only planned
    (never reminded or answered) are removed so they never turn into "not reported"."""
    if not has_reason(reason):
        raise PatientActionRefused("reason_required")
    now = rt.now()
    async with rt.session() as session:
        patient = await patient_in_reach(session, rt, actor, subject_id=subject_id, what="withdraw",
                                         update_id=update_id)
        if patient.status == PatientStatus.WITHDRAWN:
            raise PatientActionRefused("withdrawn")
        before = patient.status
        today = now.astimezone(ZoneInfo(patient.timezone)).date()
        removed = {}
        for course in (await session.exec(select(Course).where(Course.patient_id == patient.id,
                                                               Course.status == CourseStatus.ACTIVE))).all():
            days = await remove_untouched_days(session, course=course, from_date=today)
            if days:
                removed[str(course.cycle)] = days
            if course.first_day > today:
                course.status = CourseStatus.CANCELLED
                session.add(course)
        patient.status = PatientStatus.WITHDRAWN
        session.add(patient)
        await family.cancel_notices(session, patient_id=patient.id, now=now, reason="patient withdrawn")
        audit(session, at=now, actor_kind=actor.kind, actor_id=actor.id, action="patient.withdrawn", entity="patient",
              entity_id=patient.subject_id, before={"status": before},
              after={"status": "withdrawn", "removed_days": removed}, reason=reason.strip(), update_id=update_id)
        await session.commit()
        await session.refresh(patient)
    rt.wake()
    return patient


async def rebind(rt: Runtime, actor: Actor, *, subject_id: str,
                 update_id: int | None = None) -> invitations.IssuedInvitation:
    """A new single-use link for a patient who lost their phone; the old account stops
    being theirs when the new link is used (bot.services.enrolment.complete)."""
    async with rt.session() as session:
        patient = await patient_in_reach(session, rt, actor, subject_id=subject_id, what="rebind",
                                         update_id=update_id)
    if patient.status == PatientStatus.WITHDRAWN:
        raise PatientActionRefused("withdrawn")
    return await invitations.issue(rt, site_id=patient.site_id, subject_id=patient.subject_id,
                                   expires_days=expiry_days(rt.settings), actor_kind=actor.kind, actor_id=actor.id,
                                   purpose="rebind", update_id=update_id)


CORRECTABLE = (DoseState.TAKEN, DoseState.MISSED, DoseState.NOT_REPORTED)


async def correct_day(rt: Runtime, actor: Actor, *, subject_id: str, local_date: date, new_state: str, reason: str,
                      update_id: int | None = None) -> DoseDay:
    """A coordinator corrects one dose day (e.g. the patient said "not today" but did take it):
    a new event with the before/after and the reason, `source = coordinator`; never an overwrite
    of the history."""
    if new_state not in CORRECTABLE:
        raise PatientActionRefused("bad_state")
    now = rt.now()
    async with rt.session() as session:
        patient = await patient_in_reach(session, rt, actor, subject_id=subject_id, what="correct_day",
                                         update_id=update_id)
        dose = (await session.exec(select(DoseDay).where(
            DoseDay.patient_id == patient.id, DoseDay.local_date == local_date,
            DoseDay.state != DoseState.CANCELLED, DoseDay.out_of_window.is_(False)))).first()
        if dose is None:
            raise PatientActionRefused("no_day")
        if dose.state == DoseState.SCHEDULED and now < dose.closes_at and new_state == DoseState.NOT_REPORTED:
            raise PatientActionRefused("day_open")
        try:
            state = correct_dose(state=dose.state, new_state=new_state, reason=reason)
        except DoseRuleError as error:
            raise PatientActionRefused({"same_state": "unchanged"}.get(error.code, error.code)) from None
        before = {"state": dose.state, "source": dose.source, "missed_reason": dose.missed_reason}
        dose.state, dose.source = state.value, AnswerSource.COORDINATOR.value
        if state is not DoseState.MISSED:
            dose.missed_reason = None
        session.add(dose)
        session.add(DoseEvent(dose_day_id=dose.id, at=now, kind="correction", from_state=before["state"],
                              to_state=state.value, actor=actor.label[:32], reason=reason.strip()))
        audit(session, at=now, actor_kind=actor.kind, actor_id=actor.id, action="dose.corrected", entity="dose_day",
              entity_id=dose.id, before=before,
              after={"state": state.value, "source": "coordinator", "subject_id": patient.subject_id,
                     "cycle": dose.cycle, "day": dose.day, "date": local_date.isoformat()},
              reason=reason.strip(), update_id=update_id)
        await close_reminder_messages(session, now=now, dose=dose, patient=patient)
        await session.commit()
        await session.refresh(dose)
    rt.wake()
    return dose
