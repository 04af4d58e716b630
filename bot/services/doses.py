"""Dose answers from the patient's buttons: taken, missed (with a reason), remind me later."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import col, select

from bot.db.models import DoseDay, DoseEvent, Patient
from bot.domain.adherence import consecutive_unanswered
from bot.domain.dose import Answer, DoseRuleError, DoseState, answer_dose
from bot.services.alerts import raise_alert
from bot.services.audit import audit
from bot.services.outbox import enqueue
from bot.services.queries import patient_by_telegram
from bot.services.runtime import Runtime

MISSED_REASONS = ("forgot", "side_effects", "ran_out", "doctor", "other")


@dataclass(frozen=True)
class DoseResult:
    """status: recorded | already | too_late | not_yours | no_more_snoozes | snoozed | reason_saved"""

    status: str
    dose: DoseDay | None = None
    patient: Patient | None = None


async def _authorized(session, *, now, telegram_user_id: int, dose_day_id: int, what: str,
                      update_id) -> tuple[Patient | None, DoseDay | None]:
    """The caller's patient and the dose day, only if that day is theirs; otherwise the attempt
    is audited (a forged or stale callback) and the day is None."""
    patient = await patient_by_telegram(session, telegram_user_id=telegram_user_id)
    dose = await session.get(DoseDay, dose_day_id)
    if patient is None or dose is None or dose.patient_id != patient.id:
        audit(session, at=now, actor_kind="user", actor_id=telegram_user_id, action="callback.rejected",
              entity="dose_day", entity_id=dose_day_id, reason=what, update_id=update_id)
        await session.commit()
        return patient, None
    return patient, dose


async def check_consecutive(session, *, settings, now, patient: Patient, update_id=None) -> None:
    """Raise one alert when the configured number of consecutive days went missed or unreported
    (not for a withdrawn patient: the team already knows and has stopped all messages)."""
    if patient.status == "withdrawn":
        return
    states = (await session.exec(
        select(DoseDay.state).where(DoseDay.patient_id == patient.id, DoseDay.due_at <= now)
        .order_by(col(DoseDay.due_at))
    )).all()
    run = consecutive_unanswered([DoseState(s) for s in states])
    threshold = settings.alerts.consecutive_missed_threshold
    if run >= threshold:
        # One alert per run: the key names the run's first day.
        first = (await session.exec(
            select(DoseDay.id).where(DoseDay.patient_id == patient.id, DoseDay.due_at <= now)
            .order_by(col(DoseDay.due_at).desc()).offset(run - 1).limit(1)
        )).one()
        await raise_alert(session, settings=settings, now=now, site_id=patient.site_id, kind="consecutive_missed",
                          patient=patient, details={"days": run}, dedupe_key=f"consecutive:{patient.id}:{first}",
                          update_id=update_id)


async def answer(rt: Runtime, *, telegram_user_id: int, dose_day_id: int, choice: Answer,
                 source: str = "button", update_id: int | None = None) -> DoseResult:
    now = rt.now()
    async with rt.session() as session:
        patient, dose = await _authorized(session, now=now, telegram_user_id=telegram_user_id,
                                          dose_day_id=dose_day_id, what="not_yours", update_id=update_id)
        if dose is None:
            return DoseResult("not_yours")
        try:
            outcome = answer_dose(state=DoseState(dose.state), answer=choice, now=now, closes_at=dose.closes_at,
                                  late_until=dose.late_until)
        except DoseRuleError as error:
            status = "already" if error.code == "already_answered" else "too_late"
            return DoseResult(status, dose, patient)
        before = dose.state
        # Conditional update: two taps racing each other record only once.
        changed = await session.exec(
            update(DoseDay).where(DoseDay.id == dose.id, DoseDay.state == before).values(
                state=outcome.state.value, answered_at=now, late=outcome.late,
                source="late_question" if outcome.late else source)
        )
        if changed.rowcount != 1:
            await session.rollback()
            return DoseResult("already", await session.get(DoseDay, dose_day_id), patient)
        session.add(DoseEvent(dose_day_id=dose.id, at=now, kind="answer", from_state=before,
                              to_state=outcome.state.value, late=outcome.late, actor=f"patient:{patient.subject_id}"))
        audit(session, at=now, actor_kind="patient", actor_id=patient.subject_id, action="dose.answered",
              entity="dose_day", entity_id=dose.id, before={"state": before},
              after={"state": outcome.state.value, "late": outcome.late, "cycle": dose.cycle, "day": dose.day},
              update_id=update_id)
        if outcome.state is DoseState.MISSED:
            await check_consecutive(session, settings=rt.settings, now=now, patient=patient, update_id=update_id)
        await session.commit()
        await session.refresh(dose)
    rt.wake()
    return DoseResult("recorded", dose, patient)


async def add_missed_reason(rt: Runtime, *, telegram_user_id: int, dose_day_id: int, reason: str,
                            update_id: int | None = None) -> DoseResult:
    if reason not in MISSED_REASONS:
        return DoseResult("not_yours")
    now = rt.now()
    async with rt.session() as session:
        patient, dose = await _authorized(session, now=now, telegram_user_id=telegram_user_id,
                                          dose_day_id=dose_day_id, what="reason", update_id=update_id)
        if dose is None or dose.state != DoseState.MISSED:
            return DoseResult("not_yours")
        if dose.missed_reason:
            return DoseResult("already", dose, patient)
        dose.missed_reason = reason
        audit(session, at=now, actor_kind="patient", actor_id=patient.subject_id, action="dose.missed_reason",
              entity="dose_day", entity_id=dose.id, after={"reason": reason}, update_id=update_id)
        await session.commit()
    return DoseResult("reason_saved", dose, patient)


async def snooze(rt: Runtime, *, telegram_user_id: int, dose_day_id: int, update_id: int | None = None) -> DoseResult:
    now = rt.now()
    settings = rt.settings.reminders
    async with rt.session() as session:
        patient, dose = await _authorized(session, now=now, telegram_user_id=telegram_user_id,
                                          dose_day_id=dose_day_id, what="not_yours", update_id=update_id)
        if dose is None:
            return DoseResult("not_yours")
        if dose.state != DoseState.SCHEDULED or now >= dose.closes_at:
            return DoseResult("already" if dose.state != DoseState.SCHEDULED else "too_late", dose, patient)
        due = now + timedelta(minutes=settings.snooze_minutes)
        if dose.snoozes >= settings.max_snoozes or due >= dose.closes_at:
            return DoseResult("no_more_snoozes", dose, patient)
        dose.snoozes += 1
        session.add(DoseEvent(dose_day_id=dose.id, at=now, kind="snooze", from_state=dose.state, to_state=dose.state,
                              actor=f"patient:{patient.subject_id}"))
        audit(session, at=now, actor_kind="patient", actor_id=patient.subject_id, action="dose.snoozed",
              entity="dose_day", entity_id=dose.id, after={"snoozes": dose.snoozes, "until": due.isoformat()},
              update_id=update_id)
        await enqueue(session, kind="snooze", chat_id=patient.chat_id, due_at=due, now=now, patient_id=patient.id,
                      dose_day_id=dose.id, dedupe_key=f"snooze:{dose.id}:{dose.snoozes}")
        await session.commit()
        await session.refresh(dose)
    rt.wake()
    return DoseResult("snoozed", dose, patient)
