"""The prohibited-medicine check (issue 14, part 1).

With each course's plan and once mid-course (`[conmed] mid_course_day`) the patient is asked one
tap-only question: have you started any new medicine (traditional Chinese medicine, aspirin or
another blood thinner, anything to raise platelets)? "No" is recorded; "Yes" shows the configured
pick-list, and the pick is recorded and raises a same-day alert to the site. Not answering is
fine: nothing here ever blocks or changes dosing. Each (course, check point) is answered once.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from bot.domain.outbox import OutboxKind
from bot.domain.alerts import AlertKind
from bot.domain.status import CourseStatus
from bot.channels.port import Account
from bot.db.models import ConmedReport, Course, Patient
from bot.services.alerts import raise_alert
from bot.services.audit import audit
from bot.services.queries import callers_row
from bot.services.runtime import Runtime

CHECK_KIND = OutboxKind.CONMED_CHECK  # the outbox kind of the question
ALERT_KIND = AlertKind.CONMED_REPORTED
START, MID = "start", "mid"
POINTS = (START, MID)
YES, NO = "yes", "no"


def check_dedupe_key(course_id: int, point: str) -> str:
    return f"{CHECK_KIND}:{course_id}:{point}"


@dataclass(frozen=True)
class ConmedResult:
    """status: recorded | already | not_yours | off | course_gone | unknown_category."""

    status: str
    patient: Patient | None = None
    report: ConmedReport | None = None


async def answered(session, *, course_id: int, point: str) -> ConmedReport | None:
    return (await session.exec(select(ConmedReport).where(ConmedReport.course_id == course_id,
                                                          ConmedReport.check_point == point))).first()


async def authorize(rt: Runtime, *, account: Account, course_id: int, point: str,
                    update_id: int | None = None) -> ConmedResult:
    """Whether the caller may answer this check (the "Yes" tap only shows the pick-list)."""
    async with rt.session() as session:
        return await _check(rt, session, account=account, course_id=course_id, point=point,
                            update_id=update_id)


async def _check(rt: Runtime, session, *, account: Account, course_id: int, point: str,
                 update_id: int | None) -> ConmedResult:
    patient, course = await callers_row(session, Course, course_id, now=rt.now(), account=account,
                                        what="conmed check not for this user", update_id=update_id,
                                        allowed=point in POINTS)
    if course is None:
        return ConmedResult("not_yours", patient)
    if not rt.settings.conmed.enabled:
        return ConmedResult("off", patient)
    if course.status != CourseStatus.ACTIVE:
        return ConmedResult("course_gone", patient)
    existing = await answered(session, course_id=course_id, point=point)
    if existing is not None:
        return ConmedResult("already", patient, existing)
    return ConmedResult("ok", patient)


async def record(rt: Runtime, *, account: Account, course_id: int, point: str, answer: str,
                 category: str | None = None, update_id: int | None = None) -> ConmedResult:
    """Record the answer (once per course and check point); a "yes" with its category raises a
    same-day alert in the same transaction."""
    settings = rt.settings
    if answer == YES and category not in settings.conmed.by_code():
        return ConmedResult("unknown_category")
    async with rt.session() as session:
        checked = await _check(rt, session, account=account, course_id=course_id, point=point,
                               update_id=update_id)
        if checked.status != "ok":
            return checked
        now = rt.now()
        patient = checked.patient
        course = await session.get(Course, course_id)
        report = ConmedReport(patient_id=patient.id, course_id=course.id, cycle=course.cycle, check_point=point,
                              answered_at=now, answer=answer, category=category if answer == YES else None,
                              reported_by=patient.subject_id, update_id=update_id)
        session.add(report)
        try:
            await session.flush()
        except IntegrityError:  # a second tap raced the first: the first answer stands
            await session.rollback()
            async with rt.session() as again:
                return ConmedResult("already", patient, await answered(again, course_id=course_id, point=point))
        if answer == YES:
            alert = await raise_alert(
                session, settings=settings, now=now, site_id=patient.site_id, kind=ALERT_KIND, patient=patient,
                details={"course_id": course.id, "cycle": course.cycle, "check_point": point,
                         "conmed_category": category, "conmed_report_id": report.id},
                dedupe_key=f"conmed:{report.id}", update_id=update_id)
            report.alert_id = alert.id if alert is not None else None
            session.add(report)
        audit(session, at=now, actor_kind="patient", actor_id=patient.subject_id, action="conmed.answered",
              entity="conmed_report", entity_id=report.id,
              after={"subject_id": patient.subject_id, "cycle": course.cycle, "check_point": point,
                     "answer": answer, "category": report.category}, update_id=update_id)
        await session.commit()
        await session.refresh(report)
    rt.wake()
    return ConmedResult("recorded", patient, report)
