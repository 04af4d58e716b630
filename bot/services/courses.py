"""Courses: a cycle's 14 dose days. The study team registers the next cycle (after a preview),
corrects (re-anchors) or cancels a course with a reason, and confirms a course the patient
reported ("chemo ended today"); the operator's CLI registers without a preview (`add_course`).

Before a course has started its dose days are only a plan, rebuilt in place. Once any day
has been reminded or answered, those days are facts and are never rewritten: only the
untouched days move, each move recorded as a dose event, the whole change as one audit row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, update
from sqlmodel import col, func, select

from bot.domain.outbox import OutboxKind, OutboxState
from bot.domain.alerts import AlertKind
from bot.domain.status import CourseStatus, PatientStatus
from bot.config import Settings, parse_hhmm
from bot.db.models import Course, DoseDay, DoseEvent, Outbox, Patient
from bot.domain.correction import CorrectionPlan, ExistingDay, MovedDay, plan_correction
from bot.domain.dose import DoseState, day_bounds, has_reason, over_at_registration
from bot.domain.hours import next_working_day_start
from bot.domain.schedule import (CourseSpan, ScheduleError, check_new_course, check_reanchor, course_span,
                                 plan_course)
from bot.services.alerts import raise_alert
from bot.services.audit import audit
from bot.services.coord_access import Actor, check_site, patient_in_reach
from bot.services.doses import close_reminder_messages
from bot.services.outbox import enqueue
from bot.services.queries import active_courses, current_course, dose_days, patient_by_subject
from bot.services.runtime import Runtime
from bot.services.refusal import Refused


class CourseRefused(Refused):
    """code: unknown_patient | withdrawn | overlap | out_of_order | wrong_site | stale | invalid | no_course |
    past_days | reason_required | confirmed"""


def span_of(course: Course) -> CourseSpan:
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
        if other.status == CourseStatus.ACTIVE:
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
    if patient.status == PatientStatus.WITHDRAWN:
        raise CourseRefused("withdrawn")
    existing = await active_courses(session, patient_id=patient.id)
    try:
        check_new_course(chemo_end=chemo_end, existing=[span_of(c) for c in existing],
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
                    status=CourseStatus.ACTIVE, source=source, confirmed=source != "patient", created_at=now,
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
    if patient.address and patient.status == PatientStatus.ACTIVE:
        await enqueue(session, kind=OutboxKind.COURSE_PLAN, to=patient.recipient, due_at=now, now=now, patient_id=patient.id,
                      payload={"course_id": course.id}, dedupe_key=f"course_plan:{course.id}")
        # Days over before registration get one optional catch-up question, queued by the
        # scheduler once this plan has gone out (scheduler.lifecycle.queue_catch_ups).
    return course


async def add_course(rt: Runtime, *, subject_id: str, chemo_end: date, actor_kind: str, actor_id: str | int,
                     site_id: str | None = None, update_id: int | None = None) -> Course:
    """Register the next cycle for whoever the caller has decided may (the operator's CLI; a
    coordinator goes through `register`). site_id limits it to that site."""
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
                              kind=AlertKind.PATIENT_COURSE_CONFLICT, patient=patient,
                              details={"chemo_end": chemo_end.isoformat(), "refused": refused.code},
                              dedupe_key=f"patient_course_conflict:{patient.id}:{chemo_end.isoformat()}",
                              update_id=update_id)
            await session.commit()
            rt.wake()
            raise
        alert = await raise_alert(session, settings=rt.settings, now=now, site_id=patient.site_id,
                                  kind=AlertKind.PATIENT_COURSE_START, patient=patient,
                                  details={"course_id": course.id, "cycle": course.cycle,
                                           "chemo_end": chemo_end.isoformat()},
                                  dedupe_key=f"patient_course:{course.id}", update_id=update_id)
        if alert is not None:  # asked again at the start of each working day until confirmed or corrected
            alert.next_repeat_at = next_working_day_start(site.hours, now)
            session.add(alert)
        await session.commit()
    rt.wake()
    return course


# --- the study team's course actions --------------------------------------------------------

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
    plan: CorrectionPlan | None = None
    over: list[date] = field(default_factory=list)  # dates of the new span already over: before_registration


def patient_today(rt: Runtime, patient: Patient) -> date:
    return rt.now().astimezone(ZoneInfo(patient.timezone)).date()


def _shape(rt: Runtime) -> dict:
    return {"course_days": rt.settings.trial.course_days, "start_offset_days": rt.settings.trial.start_offset_days}


async def preview_new(rt: Runtime, actor: Actor, *, subject_id: str, chemo_end: date,
                      update_id: int | None = None) -> CoursePreview:
    async with rt.session() as session:
        patient = await patient_in_reach(session, rt, actor, subject_id=subject_id, what="cycle", update_id=update_id)
        if patient.status == PatientStatus.WITHDRAWN:
            raise CourseRefused("withdrawn")
        existing = await active_courses(session, patient_id=patient.id)
        try:
            check_new_course(chemo_end=chemo_end, existing=[span_of(c) for c in existing], **_shape(rt))
        except ScheduleError as error:
            raise CourseRefused(error.code, str(error)) from None
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
        same = (await session.exec(select(Course).where(Course.patient_id == patient.id, Course.status == CourseStatus.ACTIVE,
                                                        Course.chemo_end == chemo_end))).first()
    if same is not None:
        return "already", same
    course = await add_course(rt, subject_id=patient.subject_id, chemo_end=chemo_end,
                              actor_kind=actor.kind if actor.kind == "coordinator" else "operator",
                              actor_id=actor.id, site_id=patient.site_id, update_id=update_id)
    return "registered", course


async def _target(session, patient: Patient, *, cycle: int | None, today: date) -> Course:
    if cycle is not None:
        course = (await session.exec(select(Course).where(Course.patient_id == patient.id, Course.cycle == cycle,
                                                          Course.status == CourseStatus.ACTIVE))).first()
    else:
        course = await current_course(session, patient_id=patient.id, today=today)
    if course is None:
        raise CourseRefused("no_course")
    return course


async def target(rt: Runtime, actor: Actor, *, subject_id: str, cycle: int | None = None, what: str,
                 update_id: int | None = None) -> Course:
    """The course a correction or cancellation would apply to (given cycle, else the current one)."""
    async with rt.session() as session:
        patient = await patient_in_reach(session, rt, actor, subject_id=subject_id, what=what, update_id=update_id)
        return await _target(session, patient, cycle=cycle, today=patient_today(rt, patient))


def _touched(dose: DoseDay) -> bool:
    """A day that has been reminded, snoozed or answered is history, not plan."""
    return dose.state != DoseState.SCHEDULED or dose.reminder_queued_at is not None or dose.snoozes > 0


def _plan(doses: list[DoseDay], new: CourseSpan) -> CorrectionPlan:
    live = [ExistingDay(d.id, d.local_date, DoseState(d.state), d.reminder_queued_at is not None or d.snoozes > 0)
            for d in doses if d.state != DoseState.CANCELLED]
    return plan_correction(days=live, new=new)


def _check(rt: Runtime, course: Course, others: list[Course], new_chemo_end: date, today: date,
           reason: str | None) -> CourseSpan:
    try:
        return check_reanchor(course=span_of(course), new_chemo_end=new_chemo_end, today=today, reason=reason,
                              others=[span_of(c) for c in others if c.id != course.id], **_shape(rt))
    except ScheduleError as error:
        raise CourseRefused(error.code, str(error)) from None


async def _reanchoring(session, rt: Runtime, actor: Actor, *, subject_id: str, cycle: int | None,
                       new_chemo_end: date, reason: str, update_id: int | None):
    """The patient, their today, the course to move, its new span (checked), its days and the
    correction plan: what the preview shows and the correction applies."""
    patient = await patient_in_reach(session, rt, actor, subject_id=subject_id, what="correct_course",
                                     update_id=update_id)
    today = patient_today(rt, patient)
    course = await _target(session, patient, cycle=cycle, today=today)
    others = await active_courses(session, patient_id=patient.id)
    new = _check(rt, course, others, new_chemo_end, today, reason)
    doses = await dose_days(session, course_id=course.id)
    return patient, today, course, new, doses, _plan(doses, new)


async def preview_reanchor(rt: Runtime, actor: Actor, *, subject_id: str, new_chemo_end: date,
                           cycle: int | None = None, update_id: int | None = None) -> ReanchorPreview:
    """What the correction rule (docs/corrections.md) would do, shown before the coordinator confirms."""
    async with rt.session() as session:
        patient, today, course, new, doses, plan = await _reanchoring(
            session, rt, actor, subject_id=subject_id, cycle=cycle, new_chemo_end=new_chemo_end, reason="(preview)",
            update_id=update_id)
    started = any(_touched(d) for d in doses) or today >= course.first_day or new.first_day < today
    over = [d for d in [m.local_date for m in plan.moved] + [n.local_date for n in plan.created] if d < today]
    return ReanchorPreview(patient.subject_id, course.cycle, span_of(course), new, started, plan, over)


async def reanchor(rt: Runtime, actor: Actor, *, subject_id: str, cycle: int, new_chemo_end: date, reason: str,
                   update_id: int | None = None) -> Course:
    """Apply the correction rule (bot.domain.correction, docs/corrections.md) in one transaction:
    recorded days keep their dates (out-of-window outside the new span), untouched days move onto
    the free dates, free dates still left get new days, days of the new span already over become
    `before_registration`. Each day's change is a dose event; the whole change one audit row."""
    if not has_reason(reason):
        raise CourseRefused("reason_required")
    now = rt.now()
    reason = reason.strip()
    async with rt.session() as session:
        patient, today, course, new, doses, plan = await _reanchoring(
            session, rt, actor, subject_id=subject_id, cycle=cycle, new_chemo_end=new_chemo_end, reason=reason,
            update_id=update_id)
        before = _span_json(span_of(course))
        course.chemo_end, course.first_day, course.last_day = new.chemo_end, new.first_day, new.last_day
        course.confirmed = True
        session.add(course)
        fresh = {row.local_date: row for row in dose_rows(settings=rt.settings, patient=patient, course=course,
                                                                   now=now)}
        by_id = {d.id: d for d in doses}
        old_state = {d.id: d.state for d in doses}
        actor_label = actor.label[:32]
        # Day numbers first move out of the way (the (patient, cycle, day) key is checked row by row).
        live_ids = [k.id for k in plan.kept] + [m.id for m in plan.moved] + list(plan.voided)
        for dose_id in live_ids:
            await session.exec(update(DoseDay).where(DoseDay.id == dose_id).values(day=-1_000_000 - dose_id))
        for dose_id in plan.voided:
            dose = by_id[dose_id]
            await session.exec(update(DoseDay).where(DoseDay.id == dose_id).values(
                state=DoseState.CANCELLED.value, day=_free_number(dose)))
            session.add(DoseEvent(dose_day_id=dose_id, at=now, kind="void", from_state=old_state[dose_id],
                                  to_state=DoseState.CANCELLED.value, actor=actor_label,
                                  reason=f"{dose.local_date.isoformat()} is outside the corrected course: {reason}"))
            await session.exec(update(Outbox).where(Outbox.dose_day_id == dose_id, Outbox.state == OutboxState.PENDING,
                                                    Outbox.kind != OutboxKind.REMINDER_CLOSE)
                               .values(state=OutboxState.SKIPPED, finished_at=now, last_error="day outside corrected course"))
            await close_reminder_messages(session, now=now, dose=dose, patient=patient)
        was_out = {d.id: d.out_of_window for d in doses}
        for kept in plan.kept:
            await session.exec(update(DoseDay).where(DoseDay.id == kept.id).values(
                day=kept.day, out_of_window=kept.out_of_window))
            if kept.out_of_window and not was_out[kept.id]:
                session.add(DoseEvent(dose_day_id=kept.id, at=now, kind="reanchor", from_state=by_id[kept.id].state,
                                      to_state=by_id[kept.id].state, actor=actor_label,
                                      reason=f"{kept.local_date.isoformat()} kept, out of window: {reason}"))
        for moved in _in_safe_order(plan.moved):
            target = fresh[moved.local_date]
            await session.exec(update(DoseDay).where(DoseDay.id == moved.id).values(
                local_date=target.local_date, day=moved.day, due_at=target.due_at, closes_at=target.closes_at,
                late_until=target.late_until, state=target.state))
            session.add(DoseEvent(dose_day_id=moved.id, at=now, kind="reanchor", from_state=DoseState.SCHEDULED.value,
                                  to_state=target.state, actor=actor_label,
                                  reason=f"{moved.old_date.isoformat()} -> {moved.local_date.isoformat()}: {reason}"))
        for created in plan.created:
            row = fresh[created.local_date]
            row.day = created.day
            session.add(row)
        await session.flush()
        audit(session, at=now, actor_kind=actor.kind, actor_id=actor.id, action="course.reanchored", entity="course",
              entity_id=course.id, before={"subject_id": patient.subject_id, **before},
              after={"subject_id": patient.subject_id, **_span_json(new),
                     "moved_days": [m.day for m in plan.moved], "kept_days": [k.day for k in plan.kept],
                     "out_of_window": [k.local_date.isoformat() for k in plan.out_of_window],
                     "created_days": [c.day for c in plan.created],
                     "voided": [by_id[i].local_date.isoformat() for i in plan.voided],
                     "before_registration": sorted(d.isoformat() for d in plan_dates(plan)
                                                   if fresh[d].state == DoseState.BEFORE_REGISTRATION)},
              reason=reason, update_id=update_id)
        if patient.address and patient.status == PatientStatus.ACTIVE:
            await enqueue(session, kind=OutboxKind.COURSE_PLAN, to=patient.recipient, due_at=now, now=now,
                          patient_id=patient.id, payload={"course_id": course.id,  # the notice says old → new
                                                          "was": {"first_day": before["first_day"],
                                                                  "last_day": before["last_day"]}},
                          dedupe_key=f"course_plan:{course.id}:{now.isoformat()}")
        await session.commit()
        await session.refresh(course)
    rt.wake()
    return course


def plan_dates(plan: CorrectionPlan) -> set[date]:
    """Dates that get a moved or a new day."""
    return {m.local_date for m in plan.moved} | {c.local_date for c in plan.created}


def _free_number(dose: DoseDay) -> int:
    """A voided day leaves the course's numbering: a number no live day can take (live days are
    numbered from the first day, at most a course length or two either side of it)."""
    return -1000 - dose.id


def _in_safe_order(moves: tuple[MovedDay, ...]) -> list[MovedDay]:
    """Moves ordered so that no day lands on a date another day still holds (one live day per
    date is checked row by row): later moves first when days move later, earlier first otherwise.
    The rule's moves keep their order, so they never form a cycle."""
    pending = list(moves)
    held = {m.old_date for m in pending}
    ordered = []
    while pending:
        for move in pending:
            if move.local_date == move.old_date or move.local_date not in held:
                ordered.append(move)
                pending.remove(move)
                held.discard(move.old_date)
                break
        else:  # cannot happen with the rule's monotone moves; refuse rather than violate the index
            raise CourseRefused("invalid", "moves would cycle")
    return ordered


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


async def void_open_days(session, *, now, course: Course, patient: Patient, actor: str, reason: str) -> list[int]:
    """Void every day of the course that holds no answer (scheduled or not reported → cancelled):
    their queued messages are skipped and the buttons of those already sent are removed. Answered
    days keep their record."""
    voided = []
    for dose in await dose_days(session, course_id=course.id):
        if dose.state not in (DoseState.SCHEDULED, DoseState.NOT_REPORTED, DoseState.BEFORE_REGISTRATION):
            continue
        changed = await session.exec(update(DoseDay).where(DoseDay.id == dose.id, DoseDay.state == dose.state)
                                     .values(state=DoseState.CANCELLED.value))
        if changed.rowcount != 1:
            continue
        session.add(DoseEvent(dose_day_id=dose.id, at=now, kind="void", from_state=dose.state,
                              to_state=DoseState.CANCELLED.value, actor=actor[:32], reason=reason))
        await session.exec(update(Outbox).where(Outbox.dose_day_id == dose.id, Outbox.state == OutboxState.PENDING,
                                                Outbox.kind != OutboxKind.REMINDER_CLOSE)
                           .values(state=OutboxState.SKIPPED, finished_at=now, last_error="course cancelled"))
        await close_reminder_messages(session, now=now, dose=dose, patient=patient)
        voided.append(dose.day)
    return voided


async def cancel(rt: Runtime, actor: Actor, *, subject_id: str, cycle: int | None, reason: str,
                 update_id: int | None = None) -> Course:
    """Cancel a course: its open days are voided (no follow-up, no next-morning question, no
    buttons left on its reminders), the patient is told in their language, and the same dates
    are free for a course registered again."""
    if not has_reason(reason):
        raise CourseRefused("reason_required")
    now = rt.now()
    async with rt.session() as session:
        patient = await patient_in_reach(session, rt, actor, subject_id=subject_id, what="cancel_course",
                                         update_id=update_id)
        course = await _target(session, patient, cycle=cycle, today=patient_today(rt, patient))
        voided = await void_open_days(session, now=now, course=course, patient=patient, actor=actor.label,
                                      reason=reason.strip())
        course.status = CourseStatus.CANCELLED
        session.add(course)
        told = False
        if patient.address and patient.status != PatientStatus.WITHDRAWN:
            told = await enqueue(session, kind=OutboxKind.COURSE_CANCELLED, to=patient.recipient, due_at=now, now=now,
                                 patient_id=patient.id, payload={"course_id": course.id},
                                 dedupe_key=f"course_cancelled:{course.id}")
        audit(session, at=now, actor_kind=actor.kind, actor_id=actor.id, action="course.cancelled", entity="course",
              entity_id=course.id, before={"subject_id": patient.subject_id, "cycle": course.cycle, "status": "active"},
              after={"status": "cancelled", "voided_days": voided, "patient_told": told}, reason=reason.strip(),
              update_id=update_id)
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
            raise CourseRefused("no_course")
        patient = await session.get(Patient, course.patient_id)
        await check_site(session, rt, actor, site_id=patient.site_id, what="confirm_course", entity="course",
                         entity_id=course_id, update_id=update_id)
        if course.status != CourseStatus.ACTIVE:
            raise CourseRefused("no_course")
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
