"""The coordinators' morning digest, one per site per local day.

Built from the database: who is on course today, yesterday's answers, symptom reports since
the previous digest, open alerts, adherence so far. The scheduled digest is queued as outbox
rows by the scheduler (`scheduler/digests.py`) and composed when each row is sent; a row in
runtime_state claims each site-day (ON CONFLICT DO NOTHING), so a restart or a second process
never queues it twice, and another row remembers up to when the last digest reported.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select

from bot.domain.dose import PauseOrigin
from bot.domain.status import CourseStatus, PatientStatus
from bot.db.models import Alert, Course, DoseDay, Patient, PatientMessage, RuntimeState, SymptomReport, TabletCount
from bot.config import Settings
from bot.services.accountability import taken_days
from bot.services import visits as visit_service
from bot.domain.adherence import Adherence, adherence, combine
from bot.domain.schedule import course_day_number
from bot.services.alerts import needs_action
from bot.services.doses import WORRYING_REASONS
from bot.services.runtime import Runtime


@dataclass(frozen=True)
class OnCourse:
    subject_id: str
    cycle: int
    day: int
    paused: bool
    held: bool = False  # paused by the study team (a drug hold)


@dataclass(frozen=True)
class Report:
    subject_id: str
    reported_at: datetime
    level: str
    symptoms: list[str]
    note: str | None = None


@dataclass(frozen=True)
class Message:
    subject_id: str
    at: datetime
    kind: str
    text: str | None


@dataclass
class Digest:
    site_id: str
    today: date
    since: datetime
    on_course: list[OnCourse] = field(default_factory=list)
    yesterday: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)  # state -> [(subject, late)]
    reports: list[Report] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    adherence: list[tuple[str, Adherence]] = field(default_factory=list)
    total: Adherence | None = None
    reasons: list[tuple[str, date, str]] = field(default_factory=list)  # worrying missed-dose reasons since
    messages: list[Message] = field(default_factory=list)  # what patients sent since
    tablet_counts: list[tuple[str, int, int, int]] = field(default_factory=list)  # (subject, cycle, left, expected)
    now: datetime | None = None
    visits_upcoming: list = field(default_factory=list)  # (subject, visit) today and tomorrow
    visits_missed: list = field(default_factory=list)  # (subject, visit) over and not confirmed as attended


def _last_key(site_id: str) -> str:
    return f"digest:{site_id}:last"


async def build(rt: Runtime, *, site_id: str, now: datetime | None = None, since: datetime | None = None) -> Digest:
    """The digest as of now (on demand: it does not move the "since the last digest" mark)."""
    async with rt.session() as session:
        return await build_in(session, settings=rt.settings, site_id=site_id, now=now or rt.now(), since=since)


async def last_built(session, *, site_id: str) -> datetime | None:
    last = await session.get(RuntimeState, _last_key(site_id))
    return datetime.fromisoformat(last.value) if last else None


async def build_in(session, *, settings: Settings, site_id: str, now: datetime, since: datetime | None = None) -> Digest:
    """The digest at `now` for the reports since `since` (default: the last digest, else a day)."""
    site = settings.site(site_id)
    today = now.astimezone(site.tz).date()
    yesterday = today - timedelta(days=1)
    if since is None:
        since = await last_built(session, site_id=site_id) or now - timedelta(hours=24)
    patients = {p.id: p for p in (await session.exec(
        select(Patient).where(Patient.site_id == site_id).order_by(col(Patient.subject_id)))).all()}
    ids = list(patients)
    courses = (await session.exec(select(Course).where(col(Course.patient_id).in_(ids), Course.status == CourseStatus.ACTIVE)
                                  .order_by(col(Course.cycle)))).all() if ids else []
    active_course_ids = {c.id for c in courses}
    doses = (await session.exec(select(DoseDay).where(col(DoseDay.patient_id).in_(ids))
                                .order_by(col(DoseDay.cycle), col(DoseDay.day)))).all() if ids else []
    reports = (await session.exec(select(SymptomReport).where(
        col(SymptomReport.patient_id).in_(ids), SymptomReport.reported_at > since, SymptomReport.reported_at <= now)
        .order_by(col(SymptomReport.reported_at)))).all() if ids else []
    alerts = (await session.exec(select(Alert).where(Alert.site_id == site_id, col(Alert.acknowledged_at).is_(None),
                                                      needs_action())
                                 .order_by(col(Alert.created_at)))).all()
    sent = (await session.exec(select(PatientMessage).where(
        col(PatientMessage.patient_id).in_(ids), PatientMessage.direction == "from_patient",
        PatientMessage.at > since, PatientMessage.at <= now).order_by(col(PatientMessage.at)))).all() if ids else []
    visits_upcoming, visits_missed = await visit_service.for_digest(session, site_id=site_id, now=now, tz=site.tz) \
        if settings.visits.enabled else ([], [])
    tablet_counts = (await session.exec(select(TabletCount).where(
        col(TabletCount.patient_id).in_(ids), TabletCount.answered_at > since, TabletCount.answered_at <= now)
        .order_by(col(TabletCount.answered_at)))).all() if ids else []
    digest = Digest(site_id=site_id, today=today, since=since, alerts=list(alerts), now=now,
                    visits_upcoming=visits_upcoming, visits_missed=visits_missed,
                    messages=[Message(patients[m.patient_id].subject_id, m.at, m.kind, m.text) for m in sent])
    for course in courses:
        patient = patients[course.patient_id]
        if patient.status != PatientStatus.WITHDRAWN and course.first_day <= today <= course.last_day:
            digest.on_course.append(OnCourse(patient.subject_id, course.cycle, course_day_number(course.first_day, today),
                                             patient.status == PatientStatus.PAUSED,
                                             patient.status == PatientStatus.PAUSED and patient.pause_origin == PauseOrigin.TEAM))
    digest.on_course.sort(key=lambda o: o.subject_id)
    by_state: dict[str, list[tuple[str, bool]]] = defaultdict(list)
    per_patient: dict[int, list[str]] = defaultdict(list)
    for dose in doses:
        if dose.course_id not in active_course_ids or dose.state == "cancelled" or dose.out_of_window:
            continue
        per_patient[dose.patient_id].append(dose.state)
        if dose.local_date == yesterday:
            by_state[dose.state].append((patients[dose.patient_id].subject_id, dose.late))
        if dose.missed_reason in WORRYING_REASONS and dose.answered_at is not None and dose.answered_at > since:
            digest.reasons.append((patients[dose.patient_id].subject_id, dose.local_date, dose.missed_reason))
    digest.yesterday = {state: sorted(subjects) for state, subjects in by_state.items()}
    digest.reports = [Report(patients[r.patient_id].subject_id, r.reported_at, r.level, list(r.symptoms), r.note)
                      for r in reports]
    counted = []
    for patient_id, states in sorted(per_patient.items(), key=lambda item: patients[item[0]].subject_id):
        if patients[patient_id].status == PatientStatus.WITHDRAWN:
            continue
        counts = adherence(states)
        counted.append(counts)
        digest.adherence.append((patients[patient_id].subject_id, counts))
    digest.total = combine(counted)
    digest.tablet_counts = [(patients[c.patient_id].subject_id, c.cycle, c.reported_left,
                             c.dispensed - taken_days([d for d in doses if d.course_id == c.course_id]))
                            for c in tablet_counts]
    return digest


async def claim_day(session, *, site_id: str, local_date: date, owner: str, now: datetime) -> bool:
    """True for exactly one caller per site and local date (also across processes: the second
    insert waits for the first transaction and then does nothing)."""
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    result = await session.exec(insert(RuntimeState).values(
        key=day_key(site_id, local_date), value=owner, updated_at=now
    ).on_conflict_do_nothing(index_elements=["key"]))
    return bool(result.rowcount)


def day_key(site_id: str, local_date: date) -> str:
    return f"digest:{site_id}:{local_date.isoformat()}"


async def mark_built(session, *, site_id: str, at: datetime) -> None:
    """The next scheduled digest reports from `at` on."""
    row = await session.get(RuntimeState, _last_key(site_id)) or RuntimeState(key=_last_key(site_id))
    row.value, row.updated_at = at.isoformat(), at
    session.add(row)


__all__ = ["Digest", "OnCourse", "Report", "build", "build_in", "claim_day", "day_key", "last_built", "mark_built"]
