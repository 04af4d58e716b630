"""Courses: registering a cycle's 14 dose days, and a patient's own "chemo ended today"."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import col, func, select

from bot.config import Settings, parse_hhmm
from bot.db.models import Course, DoseDay, DoseEvent, Patient
from bot.domain.dose import DoseState, day_bounds, over_at_registration
from bot.domain.hours import next_working_day_start
from bot.domain.schedule import CourseSpan, ScheduleError, check_new_course, course_span, plan_course
from bot.services.alerts import raise_alert
from bot.services.audit import audit
from bot.services.outbox import enqueue
from bot.services.queries import active_courses, patient_by_subject
from bot.services.runtime import Runtime
from bot.services.refusal import Refused


class CourseRefused(Refused):
    """code: unknown_patient | withdrawn | overlap | out_of_order | wrong_site | stale"""


def _span(course: Course) -> CourseSpan:
    return CourseSpan(cycle=course.cycle, chemo_end=course.chemo_end, first_day=course.first_day, last_day=course.last_day)


def dose_rows(*, settings: Settings, patient: Patient, course: Course, now=None) -> list[DoseDay]:
    """The course's planned days. With `now`, days already over are `before_registration`: nobody
    told the patient of them, so they are neither reminded nor counted."""
    tz = ZoneInfo(patient.timezone)
    rows = []
    for planned in plan_course(chemo_end=course.chemo_end, tz=tz, reminder_time=parse_hhmm(patient.reminder_time),
                               course_days=settings.trial.course_days,
                               start_offset_days=settings.trial.start_offset_days):
        closes_at, late_until = day_bounds(local_date=planned.local_date, tz=tz, close_at=settings.reminders.close_time,
                                           late_grace_hours=settings.reminders.late_grace_hours)
        rows.append(DoseDay(patient_id=patient.id, course_id=course.id, cycle=course.cycle, day=planned.day,
                            local_date=planned.local_date, due_at=planned.due_utc, closes_at=closes_at,
                            late_until=late_until,
                            state=DoseState.BEFORE_REGISTRATION.value
                            if now is not None and over_at_registration(closes_at=closes_at, now=now)
                            else DoseState.SCHEDULED.value))
    return rows


async def _live_days_on(session, *, patient: Patient, dates: list[date]) -> dict[date, tuple[DoseDay, Course]]:
    rows = (await session.exec(select(DoseDay, Course).join(Course, Course.id == DoseDay.course_id).where(
        DoseDay.patient_id == patient.id, col(DoseDay.local_date).in_(dates),
        DoseDay.state != DoseState.CANCELLED))).all()
    return {dose.local_date: (dose, course) for dose, course in rows}


async def _place_days(session, *, now, patient: Patient, course: Course, planned: list[DoseDay], actor: str) -> list[int]:
    """Write the planned days, one live dose day per local date. A date still holding an answered
    day of a cancelled course keeps that day: it joins this course (its record unchanged, the
    move recorded), so re-registering never gives a date two days or two "taken" records.
    Returns the carried days' numbers."""
    existing = await _live_days_on(session, patient=patient, dates=[d.local_date for d in planned])
    carried = []
    for row in planned:
        found = existing.get(row.local_date)
        if found is None:
            session.add(row)
            continue
        dose, other = found
        if other.status == "active":
            raise CourseRefused("overlap", f"{row.local_date} already has a dose day in cycle {other.cycle}")
        from_course = (other.cycle, dose.day)
        dose.course_id, dose.cycle, dose.day, dose.out_of_window = course.id, course.cycle, row.day, False
        session.add(dose)
        session.add(DoseEvent(dose_day_id=dose.id, at=now, kind="carried", from_state=dose.state, to_state=dose.state,
                              actor=actor[:32], reason=f"cycle {from_course[0]} day {from_course[1]} (cancelled) -> "
                                                      f"cycle {course.cycle} day {row.day}"))
        carried.append(row.day)
    return carried


async def create_course(session, *, settings: Settings, now, patient: Patient, chemo_end: date, source: str,
                        actor_kind: str, actor_id: str | int, update_id: int | None = None) -> Course:
    """Validate against the patient's other courses, then write the course, its dose days,
    the plan message for the patient and the audit row, in the caller's transaction."""
    if patient.status == "withdrawn":
        raise CourseRefused("withdrawn")
    existing = await active_courses(session, patient_id=patient.id)
    try:
        check_new_course(chemo_end=chemo_end, existing=[_span(c) for c in existing],
                         course_days=settings.trial.course_days, start_offset_days=settings.trial.start_offset_days)
    except ScheduleError as error:
        raise CourseRefused(error.code, str(error)) from None
    # Cancelled courses keep their cycle numbers.
    last_cycle = (await session.exec(select(func.max(Course.cycle)).where(Course.patient_id == patient.id))).one()
    cycle = (last_cycle or 0) + 1
    span = course_span(cycle=cycle, chemo_end=chemo_end, course_days=settings.trial.course_days,
                       start_offset_days=settings.trial.start_offset_days)
    first_day, last_day = span.first_day, span.last_day
    course = Course(patient_id=patient.id, cycle=cycle, chemo_end=chemo_end, first_day=first_day, last_day=last_day,
                    status="active", source=source, confirmed=source != "patient", created_at=now,
                    created_by=f"{actor_kind}:{actor_id}")
    session.add(course)
    await session.flush()
    planned = dose_rows(settings=settings, patient=patient, course=course, now=now)
    carried = await _place_days(session, now=now, patient=patient, course=course, planned=planned,
                                actor=f"{actor_kind}:{actor_id}")
    before = [p.day for p in planned if p.state == DoseState.BEFORE_REGISTRATION and p.day not in carried]
    audit(session, at=now, actor_kind=actor_kind, actor_id=actor_id, action="course.registered", entity="course",
          entity_id=course.id, after={"subject_id": patient.subject_id, "cycle": cycle, "chemo_end": chemo_end.isoformat(),
                                      "first_day": first_day.isoformat(), "last_day": last_day.isoformat(),
                                      "source": source, "before_registration_days": before,
                                      "carried_days": carried}, update_id=update_id)
    if patient.address and patient.status == "active":
        await enqueue(session, kind="course_plan", to=patient.recipient, due_at=now, now=now, patient_id=patient.id,
                      payload={"course_id": course.id}, dedupe_key=f"course_plan:{course.id}")
        # Days over before registration get one optional catch-up question, queued by the
        # scheduler once this plan has gone out (scheduler.lifecycle.queue_catch_ups).
    return course


async def register(rt: Runtime, *, subject_id: str, chemo_end: date, actor_kind: str, actor_id: str | int,
                   site_id: str | None = None, update_id: int | None = None) -> Course:
    """A coordinator (or operator) registers the next cycle. site_id limits a coordinator to their site."""
    async with rt.session() as session:
        patient = await patient_by_subject(session, subject_id=subject_id)
        if patient is None:
            raise CourseRefused("unknown_patient")
        if site_id is not None and patient.site_id != site_id:
            raise CourseRefused("wrong_site")
        course = await create_course(session, settings=rt.settings, now=rt.now(), patient=patient, chemo_end=chemo_end,
                                     source="coordinator" if actor_kind == "coordinator" else "cli",
                                     actor_kind=actor_kind, actor_id=actor_id, update_id=update_id)
        await session.commit()
    rt.wake()
    return course


async def patient_reported_chemo_end(rt: Runtime, *, patient: Patient, chemo_end: date,
                                     update_id: int | None = None) -> Course:
    """"My chemotherapy for this cycle finished today", confirmed by the patient: a course from
    tomorrow, to be confirmed by the team (the alert comes back each working day until it is).
    A report that conflicts with a registered course changes nothing but tells the team: it is
    the main sign that a cycle was delayed (`CourseRefused` is raised after the alert is saved)."""
    now = rt.now()
    today = now.astimezone(ZoneInfo(patient.timezone)).date()
    if not today - timedelta(days=1) <= chemo_end <= today:
        raise CourseRefused("stale")
    async with rt.session() as session:
        patient = await session.get(Patient, patient.id)
        site = rt.settings.site(patient.site_id)
        try:
            course = await create_course(session, settings=rt.settings, now=now, patient=patient, chemo_end=chemo_end,
                                         source="patient", actor_kind="patient", actor_id=patient.subject_id,
                                         update_id=update_id)
        except CourseRefused as refused:
            patient_id = patient.id
            await session.rollback()
            patient = await session.get(Patient, patient_id, populate_existing=True)
            audit(session, at=now, actor_kind="patient", actor_id=patient.subject_id,
                  action="course.patient_report_conflict", entity="patient", entity_id=patient.subject_id,
                  after={"chemo_end": chemo_end.isoformat()}, reason=refused.code, update_id=update_id)
            await raise_alert(session, settings=rt.settings, now=now, site_id=patient.site_id,
                              kind="patient_course_conflict", patient=patient,
                              details={"chemo_end": chemo_end.isoformat(), "refused": refused.code},
                              dedupe_key=f"patient_course_conflict:{patient.id}:{chemo_end.isoformat()}",
                              update_id=update_id)
            await session.commit()
            rt.wake()
            raise
        alert = await raise_alert(session, settings=rt.settings, now=now, site_id=patient.site_id,
                                  kind="patient_course_start", patient=patient,
                                  details={"course_id": course.id, "cycle": course.cycle,
                                           "chemo_end": chemo_end.isoformat()},
                                  dedupe_key=f"patient_course:{course.id}", update_id=update_id)
        if alert is not None:  # asked again at the start of each working day until confirmed or corrected
            alert.next_repeat_at = next_working_day_start(site.hours, now)
            session.add(alert)
        await session.commit()
    rt.wake()
    return course
