"""The dose-day lifecycle, advanced to `now`: queue due reminders and their follow-ups, close
unanswered days, ask about them next morning, end courses, repeat and escalate alerts, and (in
the scheduler) queue the coordinators' morning digest (`digests.py`).

Every step is idempotent (dedupe keys, conditional updates), so running it twice, from two
processes, or after a long downtime gives the same result as running it once on time. Rows are
visited in a total order (instant, then id) so two processes never lock them in different
orders; on PostgreSQL the scheduler also serialises whole passes (see `service.py`).

After downtime: a day whose close passed is closed (and its next-morning question queued if
that is still useful); a reminder whose day is still open is queued at once, and its
follow-ups count from when it actually goes out, never from the instant it was missed.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import String, bindparam, cast, func, literal, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.domain.outbox import OutboxKind, OutboxState
from bot.domain.alerts import AlertKind
from bot.domain.status import CourseStatus, PatientStatus
from bot.config import Settings, parse_hhmm
from bot.db.models import Alert, Course, DoseDay, DoseEvent, Outbox, Patient
from bot.db.types import UTCDateTime
from bot.domain.dose import CATCH_UP_DAYS, DoseState, PauseOrigin, close_day
from bot.domain.hours import next_working_day_start
from bot.domain.schedule import local_due_instant
from bot.services.alerts import (FIRST_EMERGENCY, FOLLOW_UP, NEW, queue_copies, queue_escalation, reachable_escalation,
                                 reachable_recipients)
from bot.services.audit import audit
from bot.services.doses import check_consecutive, close_reminder_messages
from bot.services.outbox import NORMAL_LANE, enqueue
from scheduler.digests import queue_digests
from scheduler.companions import queue_conmed_checks, queue_tablet_counts, queue_visit_reminders
from scheduler.family import queue_helper_notices

BATCH = 500
log = logging.getLogger("adherence.lifecycle")
PLAN_UNSENT = (OutboxState.PENDING, OutboxState.CLAIMED, OutboxState.SENDING)
CATCH_UP_WITHIN = timedelta(days=7)  # a catch-up question is only asked soon after registration


def _closing(now: datetime):
    return (select(DoseDay, Patient).join(Patient, Patient.id == DoseDay.patient_id)
            .where(DoseDay.state == DoseState.SCHEDULED, DoseDay.closes_at <= now))


async def close_days(session: AsyncSession, *, settings: Settings, now: datetime) -> int:
    rows = (await session.exec(_closing(now).order_by(col(DoseDay.closes_at), col(DoseDay.id)).limit(BATCH))).all()
    morning = parse_hhmm(settings.reminders.next_morning_time)
    for dose, patient in rows:
        # A day that closes while the study team holds the drug was never the patient's to take.
        held = patient.status == PatientStatus.PAUSED and patient.pause_origin == PauseOrigin.TEAM
        final = close_day(state=DoseState.SCHEDULED, held=held)
        changed = await session.exec(update(DoseDay).where(DoseDay.id == dose.id, DoseDay.state == DoseState.SCHEDULED)
                                     .values(state=final.value))
        if changed.rowcount != 1:
            continue
        session.add(DoseEvent(dose_day_id=dose.id, at=now, kind="close", from_state=DoseState.SCHEDULED,
                              to_state=final.value, actor="system"))
        audit(session, at=now, actor_kind="system", actor_id="scheduler",
              action="dose.closed_held" if held else "dose.closed_not_reported",
              entity="dose_day", entity_id=dose.id, before={"state": "scheduled"},
              after={"state": final.value, "subject_id": patient.subject_id, "cycle": dose.cycle, "day": dose.day},
              reason=patient.pause_reason if held else None)
        await close_reminder_messages(session, now=now, dose=dose, patient=patient)
        if held:
            continue
        ask_at = max(local_due_instant(dose.local_date + timedelta(days=1), morning, ZoneInfo(patient.timezone)), now)
        if patient.address and patient.status == PatientStatus.ACTIVE and ask_at < dose.late_until:
            await enqueue(session, kind=OutboxKind.LATE_QUESTION, to=patient.recipient, due_at=ask_at, now=now,
                          patient_id=patient.id, dose_day_id=dose.id, dedupe_key=f"late_question:{dose.id}")
        await check_consecutive(session, settings=settings, now=now, patient=patient)
    return len(rows)


def _due_days(now: datetime) -> tuple:
    return (DoseDay.state == DoseState.SCHEDULED, col(DoseDay.reminder_queued_at).is_(None), DoseDay.due_at <= now,
            DoseDay.closes_at > now)


def _remindable() -> tuple:
    return (Patient.status == PatientStatus.ACTIVE, Patient.unreachable.is_(False), col(Patient.address).is_not(None),
            ~_plan_unsent(Patient.id))


def _reminders_due(now: datetime, *columns):
    # The due days first, on their own (materialised), then their patients: planned any other way,
    # PostgreSQL without fresh statistics (right after a bulk load) probed the whole day index
    # once per patient, which took half a minute for 10,000 patients (the lifecycle's EXISTS flag
    # too: 20-40 s at start-up over 140,000 future days, before it took this form as well).
    due = select(DoseDay.id).where(*_due_days(now)).cte("due_days").prefix_with("MATERIALIZED")
    return (select(*(columns or (DoseDay, Patient))).join(due, due.c.id == DoseDay.id)
            .join(Patient, Patient.id == DoseDay.patient_id).where(*_remindable()))


async def queue_reminders(session: AsyncSession, *, settings: Settings, now: datetime) -> int:
    rows = (await session.exec(_reminders_due(now).order_by(col(DoseDay.due_at), col(DoseDay.id)).limit(BATCH))).all()
    reminders = settings.reminders
    quiet = reminders.quiet_hours
    queued = []
    for dose, patient in rows:
        tz = ZoneInfo(patient.timezone)
        queued.append(_row(OutboxKind.REMINDER, patient, dose, due_at=dose.due_at, now=now, dedupe_key=f"reminder:{dose.id}"))
        sent_from = max(dose.due_at, now)  # a reminder sent late moves its follow-ups with it
        for k in range(1, reminders.followup_count + 1):
            at = sent_from + timedelta(minutes=k * reminders.followup_minutes)
            if at < dose.closes_at and not quiet.contains(at, tz):
                queued.append(_row(OutboxKind.FOLLOWUP, patient, dose, due_at=at, now=now, payload={"k": k},
                                   dedupe_key=f"followup:{dose.id}:{k}"))
    if rows:
        await enqueue_many(session, queued)
        await session.exec(update(DoseDay).where(col(DoseDay.id).in_([dose.id for dose, _ in rows]))
                           .values(reminder_queued_at=now))
    return len(rows)


def _plan_unsent(patient_id):
    """The patient has a course plan still to go out: the plan comes before any reminder or
    question about that course (a reminder already due would otherwise be sent first)."""
    return (select(Outbox.id).where(Outbox.patient_id == patient_id, Outbox.kind == OutboxKind.COURSE_PLAN,
                                    col(Outbox.state).in_(PLAN_UNSENT)).exists())


def _plans_ready(now: datetime) -> tuple:
    return (Outbox.kind == OutboxKind.COURSE_PLAN, Outbox.state == OutboxState.PENDING, Outbox.due_at <= now)


async def plans_due(session: AsyncSession, *, now: datetime) -> int:
    """Course plans ready to send now: while there are any, the lifecycle has more to do after
    the courier has sent them (the reminders and questions they hold back)."""
    return (await session.exec(select(func.count()).select_from(Outbox).where(*_plans_ready(now)))).one()


def _catch_ups_due(now, *, closed_after, created_after):
    course_key = literal("catch_up:", String) + cast(Course.id, String)
    # The courses with days over before registration first (few, by the state index), as in
    # `_reminders_due`: driven from the courses, a plan probed every recent course's days.
    late = (select(DoseDay.course_id).where(DoseDay.state == DoseState.BEFORE_REGISTRATION,
                                            DoseDay.closes_at > closed_after)
            .distinct().cte("late_courses").prefix_with("MATERIALIZED"))
    return (select(Course, Patient).join(late, late.c.course_id == Course.id).join(Patient, Patient.id == Course.patient_id)
            .where(Course.status == CourseStatus.ACTIVE, Patient.status == PatientStatus.ACTIVE, Patient.unreachable.is_(False),
                   col(Patient.address).is_not(None), ~_plan_unsent(Patient.id),
                   ~select(Outbox.id).where(Outbox.dedupe_key == course_key).exists(),
                   Course.created_at > created_after))


async def queue_catch_ups(session: AsyncSession, *, settings: Settings, now: datetime) -> int:
    """One catch-up question per course registered late (days over before registration), once its
    plan has gone out."""
    bounds = _bounds(now)
    rows = (await session.exec(_catch_ups_due(now, closed_after=bounds["closed_after"],
                                              created_after=bounds["created_after"])
                               .order_by(col(Course.id)).limit(BATCH))).all()
    added = 0
    for course, patient in rows:
        added += await enqueue(session, kind=OutboxKind.CATCH_UP, to=patient.recipient, due_at=now, now=now,
                               patient_id=patient.id, payload={"course_id": course.id},
                               dedupe_key=f"catch_up:{course.id}")
    return added


def _row(kind: str, patient: Patient, dose: DoseDay, *, due_at: datetime, now: datetime, dedupe_key: str,
         payload: dict | None = None) -> dict:
    return dict(kind=kind, lane=NORMAL_LANE, channel=patient.channel, address=patient.address,
                patient_id=patient.id, dose_day_id=dose.id,
                alert_id=None, due_at=due_at, state=OutboxState.PENDING, attempts=0, resends=0, payload=payload or {},
                dedupe_key=dedupe_key, created_at=now)


async def enqueue_many(session: AsyncSession, rows: list[dict]) -> None:
    """`outbox.enqueue` for a whole batch in one statement (a fan-out of thousands must not cost
    one round trip per row); rows whose dedupe key is already queued are left alone."""
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    await session.exec(insert(Outbox).on_conflict_do_nothing(index_elements=["dedupe_key"]), params=rows)


def _courses_ended(course_days: int, now, *, ended_after):
    # Only courses whose summary is not queued yet: the window is three days long, and every pass
    # in it would otherwise try (and fail, by the dedupe key) to queue each summary again.
    course_key = literal("course_end:", String) + cast(Course.id, String)
    # The last days closed in the window first (by the close index), then their courses: driven
    # from the courses, a plan probed every active course's days.
    ended = (select(DoseDay.id).where(DoseDay.day == course_days, DoseDay.closes_at <= now,
                                      DoseDay.closes_at > ended_after)
             .cte("ended_days").prefix_with("MATERIALIZED"))
    return (select(Course, Patient, DoseDay).select_from(DoseDay).join(ended, ended.c.id == DoseDay.id)
            .join(Course, Course.id == DoseDay.course_id).join(Patient, Patient.id == Course.patient_id)
            .where(Course.status == CourseStatus.ACTIVE, Patient.status == PatientStatus.ACTIVE,
                   col(Patient.address).is_not(None),
                   ~select(Outbox.id).where(Outbox.dedupe_key == course_key).exists()))


async def end_courses(session: AsyncSession, *, settings: Settings, now: datetime) -> int:
    """After a course's last day has closed, send the patient its summary (once)."""
    rows = (await session.exec(_courses_ended(settings.trial.course_days, now, ended_after=_bounds(now)["ended_after"])
                               .order_by(col(Course.id)))).all()
    added = 0
    for course, patient, _ in rows:
        added += await enqueue(session, kind=OutboxKind.COURSE_END, to=patient.recipient, due_at=now, now=now,
                               patient_id=patient.id, payload={"course_id": course.id},
                               dedupe_key=f"course_end:{course.id}")
    return added


def _alerts_due(now: datetime):
    return select(Alert).where(col(Alert.acknowledged_at).is_(None),
                               ((Alert.next_repeat_at <= now)
                                | ((Alert.escalate_at <= now) & col(Alert.escalated_at).is_(None))))


async def repeat_and_escalate(session: AsyncSession, *, settings: Settings, now: datetime) -> int:
    alerts = (await session.exec(_alerts_due(now).order_by(col(Alert.id)).limit(BATCH))).all()
    for alert in alerts:
        site = settings.site(alert.site_id)
        if alert.kind == AlertKind.PATIENT_COURSE_START and alert.next_repeat_at is not None and alert.next_repeat_at <= now:
            course = await session.get(Course, (alert.details or {}).get("course_id"))
            if course is None or course.confirmed or course.status != CourseStatus.ACTIVE:
                alert.next_repeat_at = None  # confirmed, corrected or cancelled: nothing left to ask
                session.add(alert)
                continue
        if alert.next_repeat_at is not None and alert.next_repeat_at <= now:
            alert.repeats += 1
            # Repeats go after any first alert in the lane: a new emergency never waits behind them.
            recipients = await reachable_recipients(session, site)
            if alert.escalated_at is not None:  # once escalated, the repeats page the escalation contact too
                recipients += [c for c in await reachable_escalation(session, site) if c not in recipients]
            await queue_copies(session, alert=alert, recipients=recipients, now=now, priority=FOLLOW_UP)
            alert.next_repeat_at = next_working_day_start(site.hours, now) if alert.kind == AlertKind.PATIENT_COURSE_START \
                else now + timedelta(minutes=settings.alerts.repeat_minutes)
            audit(session, at=now, actor_kind="system", actor_id="scheduler", action="alert.repeated", entity="alert",
                  entity_id=alert.id, after={"round": alert.repeats})
        if alert.escalate_at is not None and alert.escalate_at <= now and alert.escalated_at is None:
            alert.escalated_at = now
            contacts = await queue_escalation(session, site=site, alert=alert, now=now,
                                              priority=FIRST_EMERGENCY if alert.level == "emergency" else NEW)
            if not contacts:
                log.critical("event=escalation_reaches_nobody site=%s alert_id=%s", site.id, alert.id)
            audit(session, at=now, actor_kind="system", actor_id="scheduler", action="alert.escalated", entity="alert",
                  entity_id=alert.id, after={"to": "escalation_contact" if contacts else None})
        session.add(alert)
    return len(alerts)


def _bounds(now: datetime) -> dict[str, datetime]:
    """The instants the lifecycle's queries compare with, besides `now`."""
    return {"closed_after": now - timedelta(days=CATCH_UP_DAYS), "created_after": now - CATCH_UP_WITHIN,
            "ended_after": now - timedelta(days=3)}


@functools.lru_cache(maxsize=16)
def _work_statement(course_days: int, *, with_outbox: bool):
    """One SELECT of EXISTS flags, one per kind of the lifecycle's own work (each over the very
    query that kind runs, without order or limit), and with `with_outbox` whether outbox rows are
    due. Built once (it takes a few milliseconds to build) with the instants as parameters."""
    now = bindparam("now", type_=UTCDateTime())
    bounds = {name: bindparam(name, type_=UTCDateTime()) for name in ("closed_after", "created_after", "ended_after")}
    queries = {
        "close": _closing(now),
        # `_reminders_due` itself: its due days materialised first (its CTE goes to the top).
        "remind": _reminders_due(now, DoseDay.id),
        "catch_up": _catch_ups_due(now, closed_after=bounds["closed_after"], created_after=bounds["created_after"]),
        "plans": select(Outbox.id).where(*_plans_ready(now)),
        "end": _courses_ended(course_days, now, ended_after=bounds["ended_after"]),
        "alerts": _alerts_due(now),
    }
    if with_outbox:
        queries["outbox"] = select(Outbox.id).where(Outbox.state == OutboxState.PENDING, Outbox.due_at <= now)
    return list(queries), select(*(q.exists() for q in queries.values()))


async def _flags(session: AsyncSession, *, settings: Settings, now: datetime, with_outbox: bool) -> dict[str, bool]:
    names, statement = _work_statement(settings.trial.course_days, with_outbox=with_outbox)
    flags = (await session.exec(statement, params={"now": now, **_bounds(now)})).one()
    return {name: bool(flag) for name, flag in zip(names, flags)}


async def _work_due(session: AsyncSession, *, settings: Settings, now: datetime) -> dict[str, bool]:
    """Which of the lifecycle's own kinds of work have anything due, in one round trip: a kind
    skipped for it would have found nothing. Most passes find little or nothing due; this keeps
    them to one statement."""
    return await _flags(session, settings=settings, now=now, with_outbox=False)


async def anything_due(session: AsyncSession, *, settings: Settings, now: datetime) -> bool:
    """Whether a pass at `now` would find anything to do: lifecycle work (as `advance` sees it,
    the features of `scheduler.companions` and `scheduler.family` aside) or outbox rows
    due. `next_due` only looks ahead; this looks at `now` itself, in one statement. With one of
    those features on, it cannot tell, and says yes."""
    if settings.conmed.enabled or settings.accountability.enabled or settings.visits.enabled or settings.helpers.enabled:
        return True
    return any((await _flags(session, settings=settings, now=now, with_outbox=True)).values())


async def advance(session: AsyncSession, *, settings: Settings, now: datetime, digests: bool = False) -> int:
    """One idempotent pass; returns how much it did (callers loop while it is busy). `digests`:
    also queue the morning digests due (the running scheduler does; tests of other rules do not)."""
    return (await step(session, settings=settings, now=now, digests=digests))[0]


async def step(session: AsyncSession, *, settings: Settings, now: datetime, digests: bool = False) -> tuple[int, bool]:
    """`advance`, and whether another pass at this instant could find more: a kind that stopped
    at its batch limit, course plans still to send (they hold reminders and questions back), or
    a feature module's work (counted as before)."""
    due = await _work_due(session, settings=settings, now=now)
    closed = await close_days(session, settings=settings, now=now) if due["close"] else 0
    reminded = await queue_reminders(session, settings=settings, now=now) if due["remind"] else 0
    caught_up = await queue_catch_ups(session, settings=settings, now=now) if due["catch_up"] else 0
    plans = await plans_due(session, now=now) if due["plans"] else 0
    ended = await end_courses(session, settings=settings, now=now) if due["end"] else 0
    features = await queue_conmed_checks(session, settings=settings, now=now, plan_unsent=_plan_unsent)
    features += await queue_tablet_counts(session, settings=settings, now=now)
    features += await queue_visit_reminders(session, settings=settings, now=now)
    features += await queue_helper_notices(session, settings=settings, now=now, plan_unsent=_plan_unsent)
    if digests:
        features += await queue_digests(session, settings=settings, now=now)
    alerts = await repeat_and_escalate(session, settings=settings, now=now) if due["alerts"] else 0
    done = closed + reminded + caught_up + plans + ended + features + alerts
    more = BATCH in (closed, reminded, alerts) or caught_up > 0 or plans > 0 or features > 0
    return done, more


async def advance_alerts(session: AsyncSession, *, settings: Settings, now: datetime) -> int:
    """The alert lane's own pass, so repeats and escalations never wait behind a reminder fan-out."""
    return await repeat_and_escalate(session, settings=settings, now=now)


async def next_due(session: AsyncSession, *, now: datetime, with_overdue: bool = False):
    """The earliest instant after `now` at which something becomes due.

    Only the future counts: whatever is due already was handled by the pass that just ran, or
    is waiting for an event that wakes the scheduler itself (a paused patient resuming, an
    unreachable one writing again). Counting it would make the scheduler spin.
    With `with_overdue`: (that instant, whether pending outbox rows are already due)."""
    overdue = (select(Outbox.id).where(Outbox.state == OutboxState.PENDING, Outbox.due_at <= now).exists(),) \
        if with_overdue else ()
    candidates = (await session.exec(select(  # one round trip: this runs after every pass
        select(_earliest(Outbox.due_at)).where(Outbox.state == OutboxState.PENDING, Outbox.due_at > now).scalar_subquery(),
        select(_earliest(DoseDay.due_at)).where(
            DoseDay.state == DoseState.SCHEDULED, col(DoseDay.reminder_queued_at).is_(None), DoseDay.due_at > now
        ).scalar_subquery(),
        # Every close, answered days included: the last one ends the course.
        select(_earliest(DoseDay.closes_at)).where(DoseDay.closes_at > now).scalar_subquery(),
        select(_earliest(Alert.next_repeat_at)).where(
            col(Alert.acknowledged_at).is_(None), Alert.next_repeat_at > now).scalar_subquery(),
        select(_earliest(Alert.escalate_at)).where(
            col(Alert.acknowledged_at).is_(None), col(Alert.escalated_at).is_(None), Alert.escalate_at > now
        ).scalar_subquery(),
        *overdue,
    ))).one()
    values = [c for c in candidates[:5] if c is not None]
    earliest = min(values) if values else None
    return (earliest, bool(candidates[5])) if with_overdue else earliest


async def next_wakeup(session: AsyncSession, *, now: datetime) -> tuple[datetime | None, bool]:
    """`next_due` and `overdue_outbox` in one round trip (what every pass asks before it sleeps)."""
    return await next_due(session, now=now, with_overdue=True)


async def overdue_outbox(session: AsyncSession, *, now: datetime) -> bool:
    """Pending rows already due: normally none after a drain (another process may hold them)."""
    return (await session.exec(select(Outbox.id).where(Outbox.state == OutboxState.PENDING, Outbox.due_at <= now)
                               .limit(1))).first() is not None


def _earliest(column):
    # Typed, so SQLite's text result comes back as an aware UTC datetime.
    return func.min(column, type_=UTCDateTime())
