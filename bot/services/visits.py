"""Blood-test and clinic visits (issue 14, part 2).

Coordinators register a visit (`/visit SUBJECT YYYY-MM-DD HH:MM [kind]`, CLI `visit`), move or
cancel it with a reason, and confirm it as attended. The patient is reminded the day before (at
their reminder time) and two hours before (configurable), with the site's name and phone, and
can answer "I'll be there" or "I need to change it" (an info alert). A visit not confirmed as
attended by the end of its day is listed in the digest until it is confirmed or cancelled.
Times are the patient's local wall-clock times, stored in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from bot.domain.outbox import OutboxKind
from bot.domain.alerts import AlertKind
from bot.domain.status import PatientStatus
from bot.channels.port import Account
from bot.db.models import Patient, Visit
from bot.domain.schedule import local_due_instant
from bot.services.alerts import raise_alert
from bot.services.audit import audit
from bot.services.coord_access import Actor, patient_in_reach, check_site
from bot.services.queries import callers_row
from bot.services.runtime import Runtime
from bot.services.refusal import Refused

REMINDER_KIND = OutboxKind.VISIT_REMINDER  # the outbox kind
ALERT_KIND = AlertKind.VISIT_CHANGE_REQUEST
SCHEDULED, CANCELLED, ATTENDED = "scheduled", "cancelled", "attended"
COMING, CHANGE = "coming", "change"
DAY_BEFORE, SOON = "day_before", "soon"
UNCONFIRMED_FOR = timedelta(days=14)  # how long an unconfirmed past visit stays in the digest


class VisitRefused(Refused):
    """code: off | bad_kind | withdrawn | past | future | no_visit | reason | bad_action"""


def local_day_end(visit: Visit, tz: ZoneInfo) -> datetime:
    local = visit.at.astimezone(tz).date() + timedelta(days=1)
    return local_due_instant(local, time(0, 0), tz)


def unconfirmed(visit: Visit, tz: ZoneInfo, now: datetime) -> bool:
    """Still scheduled although its day is over: not confirmed as attended."""
    return visit.status == SCHEDULED and local_day_end(visit, tz) <= now


def reminder_key(visit: Visit, which: str) -> str:
    return f"visit:{visit.id}:{int(visit.at.timestamp())}:{which}"


def _instant(local_date: date, local_time: time, tz: ZoneInfo) -> datetime:
    return local_due_instant(local_date, local_time, tz)


def _kind(rt: Runtime, kind: str | None) -> str:
    codes = [k.code for k in rt.settings.visits.kinds]
    kind = (kind or codes[0]).lower()
    if kind not in codes:
        raise VisitRefused("bad_kind")
    return kind


def _enabled(rt: Runtime) -> None:
    if not rt.settings.visits.enabled:
        raise VisitRefused("off")


async def register(rt: Runtime, actor: Actor, *, subject_id: str, local_date: date, local_time: time,
                   kind: str | None = None, update_id: int | None = None) -> tuple[Visit, Patient]:
    _enabled(rt)
    kind = _kind(rt, kind)
    now = rt.now()
    async with rt.session() as session:
        patient = await patient_in_reach(session, rt, actor, subject_id=subject_id, what="visit", update_id=update_id)
        if patient.status == PatientStatus.WITHDRAWN:
            raise VisitRefused("withdrawn")
        at = _instant(local_date, local_time, ZoneInfo(patient.timezone))
        if at <= now:
            raise VisitRefused("past")
        visit = Visit(patient_id=patient.id, site_id=patient.site_id, kind=kind, at=at, status=SCHEDULED,
                      created_at=now, created_by=actor.label[:48])
        session.add(visit)
        await session.flush()
        audit(session, at=now, actor_kind=actor.kind, actor_id=actor.id, action="visit.registered", entity="visit",
              entity_id=visit.id, after={"subject_id": patient.subject_id, "kind": kind, "at": at.isoformat()},
              update_id=update_id)
        await session.commit()
        await session.refresh(visit)
    rt.wake()
    return visit, patient


async def _visit_in_reach(session, rt: Runtime, actor: Actor, visit_id: int, what: str, update_id) \
        -> tuple[Visit, Patient]:
    visit = await session.get(Visit, visit_id)
    if visit is None:
        raise VisitRefused("no_visit")
    await check_site(session, rt, actor, site_id=visit.site_id, what=what, entity="visit", entity_id=visit_id,
                     update_id=update_id)
    return visit, await session.get(Patient, visit.patient_id)


async def change(rt: Runtime, actor: Actor, *, visit_id: int, action: str, reason: str | None = None,
                 local_date: date | None = None, local_time: time | None = None,
                 update_id: int | None = None) -> tuple[Visit, Patient]:
    """move (new date and time, with a reason), cancel (with a reason) or attended."""
    _enabled(rt)
    now = rt.now()
    reason = (reason or "").strip()
    if action in ("move", "cancel") and not reason:
        raise VisitRefused("reason")
    async with rt.session() as session:
        visit, patient = await _visit_in_reach(session, rt, actor, visit_id, f"visit_{action}", update_id)
        if visit.status != SCHEDULED:
            raise VisitRefused(visit.status)
        before = {"status": visit.status, "at": visit.at.isoformat()}
        if action == "move":
            at = _instant(local_date, local_time, ZoneInfo(patient.timezone))
            if at <= now:
                raise VisitRefused("past")
            visit.at, visit.patient_answer, visit.answered_at = at, None, None
        elif action == "cancel":
            visit.status = CANCELLED
        elif action == "attended":
            if visit.at > now + timedelta(hours=12):
                raise VisitRefused("future")
            visit.status, visit.attended_at, visit.attended_by = ATTENDED, now, actor.label[:48]
        else:
            raise VisitRefused("bad_action")
        visit.reason = reason or visit.reason
        visit.updated_at = now
        session.add(visit)
        audit(session, at=now, actor_kind=actor.kind, actor_id=actor.id, action=f"visit.{'moved' if action == 'move' else 'cancelled' if action == 'cancel' else 'attended'}",
              entity="visit", entity_id=visit.id, before=before,
              after={"subject_id": patient.subject_id, "status": visit.status, "at": visit.at.isoformat()},
              reason=reason or None, update_id=update_id)
        await session.commit()
        await session.refresh(visit)
    rt.wake()
    return visit, patient


@dataclass(frozen=True)
class AnswerResult:
    """status: recorded | not_yours | gone | off."""

    status: str
    patient: Patient | None = None
    visit: Visit | None = None


async def answer(rt: Runtime, *, account: Account, visit_id: int, choice: str,
                 update_id: int | None = None) -> AnswerResult:
    now = rt.now()
    async with rt.session() as session:
        patient, visit = await callers_row(session, Visit, visit_id, now=now, account=account,
                                           what="visit answer not for this user", update_id=update_id,
                                           allowed=choice in (COMING, CHANGE))
        if visit is None:
            return AnswerResult("not_yours", patient)
        if not rt.settings.visits.enabled:
            return AnswerResult("off", patient, visit)
        if visit.status != SCHEDULED or visit.at <= now:
            return AnswerResult("gone", patient, visit)
        before = {"patient_answer": visit.patient_answer}
        visit.patient_answer, visit.answered_at = choice, now
        session.add(visit)
        if choice == CHANGE:
            await raise_alert(session, settings=rt.settings, now=now, site_id=patient.site_id, kind=ALERT_KIND,
                              patient=patient, details={"visit_id": visit.id, "visit_kind": visit.kind,
                                                        "visit_at": visit.at.isoformat()},
                              dedupe_key=f"visit_change:{visit.id}:{int(visit.at.timestamp())}", update_id=update_id)
        audit(session, at=now, actor_kind="patient", actor_id=patient.subject_id, action="visit.answered",
              entity="visit", entity_id=visit.id, before=before,
              after={"subject_id": patient.subject_id, "patient_answer": choice}, update_id=update_id)
        await session.commit()
        await session.refresh(visit)
    rt.wake()
    return AnswerResult("recorded", patient, visit)


async def for_patient(session, *, patient: Patient, now: datetime) -> list[Visit]:
    """Upcoming visits and past ones still unconfirmed (for /patient)."""
    rows = (await session.exec(select(Visit).where(Visit.patient_id == patient.id, Visit.status == SCHEDULED,
                                                   Visit.at > now - UNCONFIRMED_FOR)
                               .order_by(col(Visit.at)))).all()
    return list(rows)


async def for_digest(session, *, site_id: str, now: datetime, tz: ZoneInfo) -> tuple[list, list]:
    """(upcoming today and tomorrow, unconfirmed past) as (subject, visit) pairs."""
    rows = (await session.exec(select(Visit, Patient.subject_id).join(Patient, Patient.id == Visit.patient_id)
                               .where(Visit.site_id == site_id, Visit.status == SCHEDULED,
                                      Visit.at > now - UNCONFIRMED_FOR, Visit.at < now + timedelta(days=2))
                               .order_by(col(Visit.at)))).all()
    upcoming = [(subject, v) for v, subject in rows if v.at > now]
    missed = [(subject, v) for v, subject in rows if v.at <= now and unconfirmed(v, tz, now)]
    return upcoming, missed
