"""Tablet accountability (issue 14, part 3).

After a course's last day the patient is asked how many tablets are left (buttons 0-5, "more",
or a typed number). The answer is compared with what the dose record implies: tablets dispensed
per course (configuration) minus days recorded as taken. The team sees the difference on
/patient, in the digest and in accountability.csv; a difference beyond the configured tolerance
raises an info alert. The patient is only thanked: never told a count is "wrong".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot.domain.dose import DoseState
from bot.domain.outbox import OutboxKind, OutboxState
from bot.domain.alerts import AlertKind
from bot.domain.status import CourseStatus
from bot.channels.port import Account
from bot.db.models import Course, DoseDay, Outbox, Patient, TabletCount
from bot.services.alerts import raise_alert
from bot.services.audit import audit
from bot.services.queries import callers_row, patient_by_account
from bot.services.runtime import Runtime

COUNT_KIND = OutboxKind.TABLET_COUNT  # the outbox kind of the question
ALERT_KIND = AlertKind.TABLET_COUNT_DIFFERENCE
BUTTON, TYPED = "button", "typed"
MAX_TABLETS = 999
OPEN_FOR = timedelta(days=7)  # a typed number answers the question this long after it was sent


def count_dedupe_key(course_id: int) -> str:
    return f"{COUNT_KIND}:{course_id}"


def taken_days(doses: list[DoseDay]) -> int:
    return sum(1 for d in doses if d.state == DoseState.TAKEN and not d.out_of_window)


def ran_out_days(doses: list[DoseDay]) -> list[DoseDay]:
    return [d for d in doses if d.missed_reason == "ran_out" and not d.out_of_window]


@dataclass(frozen=True)
class Balance:
    """One course's tablets as the team sees them (expected from the current record)."""

    course_id: int
    cycle: int
    dispensed: int
    reported_left: int | None
    expected_left: int
    ran_out: list[DoseDay]
    answered_at: datetime | None = None

    @property
    def difference(self) -> int | None:
        return None if self.reported_left is None else self.reported_left - self.expected_left


@dataclass(frozen=True)
class CountResult:
    """status: recorded | already | not_yours | off | course_gone | invalid | none_open."""

    status: str
    patient: Patient | None = None
    count: TabletCount | None = None


def parse_count(text: str) -> int | None:
    """'3', ' 12 ', '３' → a count; anything else (words, signs, huge numbers) → None."""
    value = text.strip()
    if not value or len(value) > 3 or not value.isdecimal():
        return None
    return int(value)


async def open_course(session, *, patient: Patient, now: datetime) -> int | None:
    """The course whose tablet question went out lately and is still unanswered."""
    sent = (await session.exec(
        select(Outbox.payload).where(Outbox.patient_id == patient.id, Outbox.kind == COUNT_KIND,
                                     col(Outbox.state).in_((OutboxState.SENT, OutboxState.UNKNOWN)), Outbox.finished_at > now - OPEN_FOR)
        .order_by(col(Outbox.id).desc()))).all()
    for payload in sent:
        course_id = (payload or {}).get("course_id")
        if course_id and (await session.exec(select(TabletCount.id).where(TabletCount.course_id == course_id))).first() \
                is None:
            return course_id
    return None


async def record_typed(rt: Runtime, *, account: Account, text: str, update_id: int | None = None) \
        -> CountResult | None:
    """A typed number answers the open tablet question; None when there is none (or the text is
    not a number), so the message goes the usual way (kept and relayed to the team)."""
    if not rt.settings.accountability.enabled:
        return None
    left = parse_count(text)
    if left is None:
        return None
    async with rt.session() as session:
        patient = await patient_by_account(session, account=account)
        course_id = await open_course(session, patient=patient, now=rt.now()) if patient is not None else None
    if course_id is None:
        return None
    return await record(rt, account=account, course_id=course_id, left=left, source=TYPED,
                        update_id=update_id)


async def authorize(rt: Runtime, *, account: Account, course_id: int,
                    update_id: int | None = None) -> CountResult:
    async with rt.session() as session:
        return await _check(rt, session, account=account, course_id=course_id, update_id=update_id)


async def _check(rt: Runtime, session, *, account: Account, course_id: int, update_id) -> CountResult:
    patient, course = await callers_row(session, Course, course_id, now=rt.now(), account=account,
                                        what="tablet count not for this user", update_id=update_id)
    if course is None:
        return CountResult("not_yours", patient)
    if not rt.settings.accountability.enabled:
        return CountResult("off", patient)
    if course.status != CourseStatus.ACTIVE:
        return CountResult("course_gone", patient)
    existing = (await session.exec(select(TabletCount).where(TabletCount.course_id == course_id))).first()
    if existing is not None:
        return CountResult("already", patient, existing)
    return CountResult("ok", patient)


async def record(rt: Runtime, *, account: Account, course_id: int, left: int, source: str,
                 update_id: int | None = None) -> CountResult:
    settings = rt.settings.accountability
    if left < 0 or left > MAX_TABLETS:
        return CountResult("invalid")
    async with rt.session() as session:
        checked = await _check(rt, session, account=account, course_id=course_id,
                               update_id=update_id)
        if checked.status != "ok":
            return checked
        now, patient = rt.now(), checked.patient
        course = await session.get(Course, course_id)
        doses = list((await session.exec(select(DoseDay).where(DoseDay.course_id == course_id))).all())
        expected = settings.tablets_per_course - taken_days(doses)
        count = TabletCount(patient_id=patient.id, course_id=course_id, cycle=course.cycle, answered_at=now,
                            reported_left=left, dispensed=settings.tablets_per_course, expected_left=expected,
                            source=source, reported_by=patient.subject_id, update_id=update_id)
        session.add(count)
        try:
            await session.flush()
        except IntegrityError:  # a second answer raced the first: the first stands
            await session.rollback()
            return CountResult("already", patient)
        difference = left - expected
        if abs(difference) > settings.tolerance:
            alert = await raise_alert(
                session, settings=rt.settings, now=now, site_id=patient.site_id, kind=ALERT_KIND, patient=patient,
                details={"course_id": course_id, "cycle": course.cycle, "dispensed": settings.tablets_per_course,
                         "reported_left": left, "expected_left": expected, "difference": difference,
                         "ran_out_days": [d.day for d in ran_out_days(doses)]},
                dedupe_key=f"tablets:{course_id}", update_id=update_id)
            count.alert_id = alert.id if alert is not None else None
            session.add(count)
        audit(session, at=now, actor_kind="patient", actor_id=patient.subject_id, action="tablets.counted",
              entity="tablet_count", entity_id=count.id,
              after={"subject_id": patient.subject_id, "cycle": course.cycle, "reported_left": left,
                     "dispensed": settings.tablets_per_course, "expected_left": expected, "difference": difference,
                     "source": source}, update_id=update_id)
        await session.commit()
        await session.refresh(count)
    rt.wake()
    return CountResult("recorded", patient, count)


async def balances(session, *, settings, patient_id: int) -> list[Balance]:
    """Each finished or answered course's tablets, from the current dose record."""
    courses = (await session.exec(select(Course).where(Course.patient_id == patient_id, Course.status == CourseStatus.ACTIVE)
                                  .order_by(col(Course.cycle)))).all()
    counts = {c.course_id: c for c in (await session.exec(
        select(TabletCount).where(TabletCount.patient_id == patient_id))).all()}
    out = []
    for course in courses:
        doses = list((await session.exec(select(DoseDay).where(DoseDay.course_id == course.id))).all())
        count = counts.get(course.id)
        if count is None and not ran_out_days(doses):
            continue
        dispensed = count.dispensed if count else settings.accountability.tablets_per_course
        out.append(Balance(course.id, course.cycle, dispensed, count.reported_left if count else None,
                           dispensed - taken_days(doses), ran_out_days(doses), count.answered_at if count else None))
    return out
