"""Keyword-only lookups shared by several use cases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.domain.dose import DoseState
from bot.domain.status import CourseStatus, HelperStatus, PatientStatus
from bot.channels.port import Account
from bot.db.engine import execute
from bot.db.models import Course, DoseDay, Helper, Patient
from bot.services.audit import audit


def _of(model, account: Account):
    return (model.channel == account.channel, model.account == account.id)


@dataclass(frozen=True)
class CallerFacts:
    """What the handlers that run before the features would otherwise each ask on every update:
    whether this account is a patient marked unreachable, and whether it has any helper row."""

    unreachable_patient: bool
    helper_row: bool


async def caller_facts(db, *, account: Account) -> CallerFacts:
    """Both facts in one statement (a session or a bare connection)."""
    row = (await execute(db, select(exists().where(*_of(Patient, account), Patient.unreachable.is_(True)),
                                    exists().where(*_of(Helper, account))))).one()
    return CallerFacts(bool(row[0]), bool(row[1]))


async def helper_by_account(session: AsyncSession, *, account: Account) -> tuple[Helper, Patient] | None:
    """This account's helper row and its patient, while it counts: the helper not removed, the
    patient's consent to helpers still given and the patient not withdrawn."""
    return (await session.exec(select(Helper, Patient).join(Patient, Patient.id == Helper.patient_id).where(
        *_of(Helper, account), Helper.status == HelperStatus.ACTIVE, col(Patient.helper_consent_at).is_not(None),
        Patient.status != PatientStatus.WITHDRAWN))).first()


async def patient_by_account(session: AsyncSession, *, account: Account) -> Patient | None:
    statement = select(Patient).where(*_of(Patient, account), Patient.status != PatientStatus.WITHDRAWN)
    return (await session.exec(statement)).first()


async def callers_row(session: AsyncSession, model, row_id: int, *, now: datetime, account: Account,
                      what: str, update_id: int | None, allowed: bool = True) -> tuple[Patient | None, object | None]:
    """The caller's patient and the row a button names (a dose day, course, visit ...), only if
    the row is theirs and `allowed`; otherwise the attempt is audited (a forged or stale
    callback) and committed, and the row is None."""
    patient = await patient_by_account(session, account=account)
    row = await session.get(model, row_id)
    if patient is None or row is None or row.patient_id != patient.id or not allowed:
        audit(session, at=now, actor_kind="user", actor_id=account.key, action="callback.rejected",
              entity=model.__tablename__, entity_id=row_id, reason=what, update_id=update_id)
        await session.commit()
        return patient, None
    return patient, row


async def withdrawn_patient_by_account(session: AsyncSession, *, account: Account) -> Patient | None:
    """The withdrawn enrolment of this account, if any (to tell them they left, not "enrol")."""
    statement = select(Patient).where(*_of(Patient, account), Patient.status == PatientStatus.WITHDRAWN)
    return (await session.exec(statement)).first()


async def patient_by_subject(session: AsyncSession, *, subject_id: str) -> Patient | None:
    return (await session.exec(select(Patient).where(Patient.subject_id == subject_id))).first()


async def active_courses(session: AsyncSession, *, patient_id: int) -> list[Course]:
    statement = (
        select(Course).where(Course.patient_id == patient_id, Course.status == CourseStatus.ACTIVE).order_by(col(Course.cycle))
    )
    return list((await session.exec(statement)).all())


async def dose_days(session: AsyncSession, *, course_id: int) -> list[DoseDay]:
    statement = select(DoseDay).where(DoseDay.course_id == course_id).order_by(col(DoseDay.day))
    return list((await session.exec(statement)).all())


async def current_course(session: AsyncSession, *, patient_id: int, today) -> Course | None:
    """The course running today, else the next one, else the last one."""
    courses = await active_courses(session, patient_id=patient_id)
    for course in courses:
        if course.first_day <= today <= course.last_day:
            return course
    upcoming = [c for c in courses if c.first_day > today]
    if upcoming:
        return upcoming[0]
    return courses[-1] if courses else None


async def open_dose_day(session: AsyncSession, *, patient_id: int, now: datetime) -> DoseDay | None:
    """Today's dose day if its reminder time has come and it is still open."""
    statement = select(DoseDay).where(
        DoseDay.patient_id == patient_id,
        DoseDay.state == DoseState.SCHEDULED,
        DoseDay.closes_at > now,
    ).order_by(col(DoseDay.due_at))
    return (await session.exec(statement)).first()
