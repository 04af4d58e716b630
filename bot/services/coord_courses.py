"""Coordinator course actions: register the next cycle (after a preview), correct (re-anchor)
or cancel a course with a reason, confirm a course the patient reported.

Before a course has started its dose days are only a plan, rebuilt in place. Once any day
has been reminded or answered, those days are facts and are never rewritten: only the
untouched days move, each move recorded as a dose event, the whole change as one audit row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func
from sqlmodel import select

from bot.db.models import Course, DoseDay, DoseEvent, Outbox, Patient
from bot.domain.dose import has_reason
from bot.domain.schedule import (
    CourseSpan,
    ScheduleError,
    check_new_course,
    check_reanchor,
    course_span,
)
from bot.services import courses
from bot.services.audit import audit
from bot.services.coord_access import Actor, check_site, patient_in_reach
from bot.services.outbox import enqueue
from bot.services.queries import active_courses, current_course, dose_days
from bot.services.runtime import Runtime


class CourseActionRefused(Exception):
    """code: withdrawn | overlap | out_of_order | invalid | no_course | past_days | reason_required | confirmed"""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code = code


@dataclass(frozen=True)
class CoursePreview:
    subject_id: str
    cycle: int
    span: CourseSpan
    dates: list[date]
    starts_in_past: bool


@dataclass(frozen=True)
class ReanchorPreview:
    subject_id: str
    cycle: int
    old: CourseSpan
    new: CourseSpan
    started: bool


def span_of(course: Course) -> CourseSpan:
    return CourseSpan(cycle=course.cycle, chemo_end=course.chemo_end, first_day=course.first_day,
                      last_day=course.last_day)


def patient_today(rt: Runtime, patient: Patient) -> date:
    return rt.now().astimezone(ZoneInfo(patient.timezone)).date()


def _shape(rt: Runtime) -> dict:
    return {"course_days": rt.settings.trial.course_days, "start_offset_days": rt.settings.trial.start_offset_days}


async def preview_new(rt: Runtime, actor: Actor, *, subject_id: str, chemo_end: date,
                      update_id: int | None = None) -> CoursePreview:
    async with rt.session() as session:
        patient = await patient_in_reach(session, rt, actor, subject_id=subject_id, what="cycle", update_id=update_id)
        if patient.status == "withdrawn":
            raise CourseActionRefused("withdrawn")
        existing = await active_courses(session, patient_id=patient.id)
        try:
            check_new_course(chemo_end=chemo_end, existing=[span_of(c) for c in existing], **_shape(rt))
        except ScheduleError as error:
            raise CourseActionRefused(error.code, str(error)) from None
        last = (await session.exec(select(func.max(Course.cycle)).where(Course.patient_id == patient.id))).one()
    span = course_span(cycle=(last or 0) + 1, chemo_end=chemo_end, **_shape(rt))
    dates = [span.first_day + timedelta(days=i) for i in range(span.days)]
    return CoursePreview(patient.subject_id, span.cycle, span, dates, span.first_day < patient_today(rt, patient))


async def register(rt: Runtime, actor: Actor, *, subject_id: str, chemo_end: date,
                   update_id: int | None = None) -> tuple[str, Course]:
    """("registered" | "already", course). A second tap on the same confirmation finds the course
    it created and registers nothing."""
    async with rt.session() as session:
        patient = await patient_in_reach(session, rt, actor, subject_id=subject_id, what="cycle", update_id=update_id)
        same = (await session.exec(select(Course).where(Course.patient_id == patient.id, Course.status == "active",
                                                        Course.chemo_end == chemo_end))).first()
    if same is not None:
        return "already", same
    try:
        course = await courses.register(rt, subject_id=patient.subject_id, chemo_end=chemo_end,
                                        actor_kind=actor.kind if actor.kind == "coordinator" else "operator",
                                        actor_id=actor.id, site_id=patient.site_id, update_id=update_id)
    except courses.CourseRefused as error:
        raise CourseActionRefused(error.code, str(error)) from None
    return "registered", course


async def _target(session, patient: Patient, *, cycle: int | None, today: date) -> Course:
    if cycle is not None:
        course = (await session.exec(select(Course).where(Course.patient_id == patient.id, Course.cycle == cycle,
                                                          Course.status == "active"))).first()
    else:
        course = await current_course(session, patient_id=patient.id, today=today)
    if course is None:
        raise CourseActionRefused("no_course")
    return course


async def target(rt: Runtime, actor: Actor, *, subject_id: str, cycle: int | None = None, what: str,
                 update_id: int | None = None) -> Course:
    """The course a correction or cancellation would apply to (given cycle, else the current one)."""
    async with rt.session() as session:
        patient = await patient_in_reach(session, rt, actor, subject_id=subject_id, what=what, update_id=update_id)
        return await _target(session, patient, cycle=cycle, today=patient_today(rt, patient))


def _touched(dose: DoseDay) -> bool:
    """A day that has been reminded, snoozed or answered is history, not plan."""
    return dose.state != "scheduled" or dose.reminder_queued_at is not None or dose.snoozes > 0


def _plan_moves(doses: list[DoseDay], new: CourseSpan, today: date) -> list[tuple[DoseDay, date]]:
    touched = [d.local_date for d in doses if _touched(d)]
    floor = max(touched) if touched else None
    moves = []
    for dose in doses:
        if _touched(dose):
            continue
        target = new.first_day + timedelta(days=dose.day - 1)
        if touched and (target <= floor or target < today):
            raise CourseActionRefused("past_days", f"day {dose.day} would move to {target}, which is already over")
        moves.append((dose, target))
    return moves


def _check(rt: Runtime, course: Course, others: list[Course], new_chemo_end: date, today: date,
           reason: str | None) -> CourseSpan:
    try:
        return check_reanchor(course=span_of(course), new_chemo_end=new_chemo_end, today=today, reason=reason,
                              others=[span_of(c) for c in others if c.id != course.id], **_shape(rt))
    except ScheduleError as error:
        raise CourseActionRefused(error.code, str(error)) from None


async def preview_reanchor(rt: Runtime, actor: Actor, *, subject_id: str, new_chemo_end: date,
                           cycle: int | None = None, update_id: int | None = None) -> ReanchorPreview:
    async with rt.session() as session:
        patient = await patient_in_reach(session, rt, actor, subject_id=subject_id, what="correct_course",
                                         update_id=update_id)
        today = patient_today(rt, patient)
        course = await _target(session, patient, cycle=cycle, today=today)
        others = await active_courses(session, patient_id=patient.id)
        new = _check(rt, course, others, new_chemo_end, today, reason="(preview)")
        doses = await dose_days(session, course_id=course.id)
        _plan_moves(doses, new, today)
    started = any(_touched(d) for d in doses) or today >= course.first_day or new.first_day < today
    return ReanchorPreview(patient.subject_id, course.cycle, span_of(course), new, started)


async def reanchor(rt: Runtime, actor: Actor, *, subject_id: str, cycle: int, new_chemo_end: date, reason: str,
                   update_id: int | None = None) -> Course:
    if not has_reason(reason):
        raise CourseActionRefused("reason_required")
    now = rt.now()
    async with rt.session() as session:
        patient = await patient_in_reach(session, rt, actor, subject_id=subject_id, what="correct_course",
                                         update_id=update_id)
        today = patient_today(rt, patient)
        course = await _target(session, patient, cycle=cycle, today=today)
        others = await active_courses(session, patient_id=patient.id)
        new = _check(rt, course, others, new_chemo_end, today, reason)
        doses = await dose_days(session, course_id=course.id)
        moves = _plan_moves(doses, new, today)
        planned = {row.day: row for row in courses.dose_rows(settings=rt.settings, patient=patient, course=Course(
            id=course.id, patient_id=patient.id, cycle=course.cycle, chemo_end=new.chemo_end,
            first_day=new.first_day, last_day=new.last_day, created_by=course.created_by))}
        before = _span_json(span_of(course))
        for dose, target in moves:
            fresh = planned[dose.day]
            assert fresh.local_date == target
            old_date = dose.local_date
            dose.local_date, dose.due_at, dose.closes_at, dose.late_until = (
                fresh.local_date, fresh.due_at, fresh.closes_at, fresh.late_until)
            session.add(dose)
            session.add(DoseEvent(dose_day_id=dose.id, at=now, kind="reanchor", from_state=dose.state,
                                  to_state=dose.state, actor=actor.label[:32],
                                  reason=f"{old_date.isoformat()} -> {target.isoformat()}: {reason.strip()}"))
        course.chemo_end, course.first_day, course.last_day = new.chemo_end, new.first_day, new.last_day
        course.confirmed = True
        session.add(course)
        audit(session, at=now, actor_kind=actor.kind, actor_id=actor.id, action="course.reanchored", entity="course",
              entity_id=course.id, before={"subject_id": patient.subject_id, **before},
              after={"subject_id": patient.subject_id, **_span_json(new),
                     "moved_days": [d.day for d, _ in moves], "kept_days": [d.day for d in doses if _touched(d)]},
              reason=reason.strip(), update_id=update_id)
        if patient.chat_id and patient.status == "active":
            await enqueue(session, kind="course_plan", chat_id=patient.chat_id, due_at=now, now=now,
                          patient_id=patient.id, payload={"course_id": course.id},
                          dedupe_key=f"course_plan:{course.id}:{now.isoformat()}")
        await session.commit()
        await session.refresh(course)
    rt.wake()
    return course


async def remove_untouched_days(session, *, course: Course, from_date: date | None = None) -> list[int]:
    """Delete the planned (never reminded, never answered) days of a course, optionally only
    from a date on. They are plan, not data; the caller audits which days went."""
    removed = []
    for dose in await dose_days(session, course_id=course.id):
        if _touched(dose) or (from_date is not None and dose.local_date < from_date):
            continue
        referenced = (await session.exec(select(func.count()).select_from(DoseEvent)
                                         .where(DoseEvent.dose_day_id == dose.id))).one() or \
            (await session.exec(select(func.count()).select_from(Outbox).where(Outbox.dose_day_id == dose.id))).one()
        if referenced:
            continue
        removed.append(dose.day)
        await session.exec(delete(DoseDay).where(DoseDay.id == dose.id))
    return removed


async def cancel(rt: Runtime, actor: Actor, *, subject_id: str, cycle: int | None, reason: str,
                 update_id: int | None = None) -> Course:
    if not has_reason(reason):
        raise CourseActionRefused("reason_required")
    now = rt.now()
    async with rt.session() as session:
        patient = await patient_in_reach(session, rt, actor, subject_id=subject_id, what="cancel_course",
                                         update_id=update_id)
        course = await _target(session, patient, cycle=cycle, today=patient_today(rt, patient))
        removed = await remove_untouched_days(session, course=course)
        course.status = "cancelled"
        session.add(course)
        audit(session, at=now, actor_kind=actor.kind, actor_id=actor.id, action="course.cancelled", entity="course",
              entity_id=course.id, before={"subject_id": patient.subject_id, "cycle": course.cycle, "status": "active"},
              after={"status": "cancelled", "removed_days": removed}, reason=reason.strip(), update_id=update_id)
        await session.commit()
        await session.refresh(course)
    rt.wake()
    return course


async def confirm(rt: Runtime, actor: Actor, *, course_id: int, update_id: int | None = None) -> tuple[str, Course]:
    """A patient-reported course start, confirmed by the team: ("confirmed" | "already", course)."""
    now = rt.now()
    async with rt.session() as session:
        course = await session.get(Course, course_id)
        if course is None:
            raise CourseActionRefused("no_course")
        patient = await session.get(Patient, course.patient_id)
        await check_site(session, rt, actor, site_id=patient.site_id, what="confirm_course", entity="course",
                         entity_id=course_id, update_id=update_id)
        if course.status != "active":
            raise CourseActionRefused("no_course")
        if course.confirmed:
            return "already", course
        course.confirmed = True
        session.add(course)
        audit(session, at=now, actor_kind=actor.kind, actor_id=actor.id, action="course.confirmed", entity="course",
              entity_id=course.id, before={"confirmed": False},
              after={"confirmed": True, "subject_id": patient.subject_id, "cycle": course.cycle}, update_id=update_id)
        await session.commit()
        await session.refresh(course)
    return "confirmed", course


async def course_subject(rt: Runtime, *, course_id: int) -> tuple[Course, Patient] | None:
    async with rt.session() as session:
        course = await session.get(Course, course_id)
        return (course, await session.get(Patient, course.patient_id)) if course else None


def _span_json(span: CourseSpan) -> dict:
    return {"cycle": span.cycle, "chemo_end": span.chemo_end.isoformat(), "first_day": span.first_day.isoformat(),
            "last_day": span.last_day.isoformat()}


__all__ = ["CourseActionRefused", "CoursePreview", "ReanchorPreview", "cancel", "confirm", "preview_new",
           "preview_reanchor", "reanchor", "register", "remove_untouched_days", "target"]
