"""Dose answers from the patient's buttons: taken, missed (with a reason), remind me later."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, or_, update
from sqlmodel import col, select

from bot.domain.outbox import OutboxKind, OutboxState
from bot.domain.alerts import AlertKind
from bot.domain.status import PatientStatus
from bot.channels.port import Account, Recipient
from bot.db.models import DoseDay, DoseEvent, Outbox, Patient
from bot.domain.adherence import unanswered_run
from bot.domain.dose import undo_missed as undo
from bot.domain.dose import (Answer, AnswerSource, DoseRuleError, DoseState, answer_dose, answer_late,
                             catch_up_allowed, snooze_until)
from bot.services.alerts import raise_alert
from bot.services.audit import audit
from bot.services.outbox import enqueue, queued_work
from bot.services.queries import callers_row
from bot.services.runtime import Runtime

MISSED_REASONS = ("forgot", "side_effects", "ran_out", "doctor", "other")
WORRYING_REASONS = ("side_effects", "ran_out", "doctor")  # each raises a same-day alert


@dataclass(frozen=True)
class DoseResult:
    """status: recorded | already | too_late | closed | not_open | not_yours | no_more_snoozes | snoozed |
    reason_saved. `closed`: a tap on a reminder whose day is over (the next-morning question is
    the way to answer it late)."""

    status: str
    dose: DoseDay | None = None
    patient: Patient | None = None


async def _authorized(session, *, now, account: Account, dose_day_id: int, what: str,
                      update_id) -> tuple[Patient | None, DoseDay | None]:
    return await callers_row(session, DoseDay, dose_day_id, now=now, account=account, what=what,
                             update_id=update_id)


async def check_consecutive(session, *, settings, now, patient: Patient, update_id=None) -> None:
    """Raise one alert when the configured number of consecutive days went missed or unreported
    (not for a withdrawn patient: the team already knows and has stopped all messages). One alert
    per run, however many days join it and however many close in one pass: the key names the
    run's first day. Held, before-registration, cancelled and out-of-window days do not count."""
    if patient.status == PatientStatus.WITHDRAWN:
        return
    days = (await session.exec(
        select(DoseDay.id, DoseDay.state).where(DoseDay.patient_id == patient.id, DoseDay.due_at <= now,
                                                DoseDay.out_of_window.is_(False))
        .order_by(col(DoseDay.due_at), col(DoseDay.id))
    )).all()
    run, first = unanswered_run([state for _, state in days])
    if run >= settings.alerts.consecutive_missed_threshold:
        await raise_alert(session, settings=settings, now=now, site_id=patient.site_id, kind=AlertKind.CONSECUTIVE_MISSED,
                          patient=patient, details={"days": run},
                          dedupe_key=f"consecutive:{patient.id}:{days[first][0]}", update_id=update_id)


async def close_reminder_messages(session, *, now, dose: DoseDay, patient: Patient,
                                  except_message: int | None = None) -> int:
    """Queue an edit of every message of this day that still carries its buttons (reminder,
    follow-up, snooze) to the day's final state, without buttons: one left asking "have you
    taken today's tablets?" after the day was answered could make a patient take a second dose.
    Rendered from the state at delivery time, so a later answer (next-morning question,
    correction) shows there too. A message on its way right now (or due now, so possibly
    composed before this change) is followed: the courier waits for its outcome and closes it
    if it was delivered. `except_message`: the one the answer was tapped on (its handler edits it)."""
    if not patient.address:
        return 0
    delivered = and_(Outbox.state == OutboxState.SENT, col(Outbox.message_id).is_not(None))
    if except_message is not None:
        delivered = and_(delivered, Outbox.message_id != except_message)
    rows = (await session.exec(select(Outbox.id, Outbox.state, Outbox.message_id, Outbox.channel, Outbox.address).where(
        Outbox.dose_day_id == dose.id, col(Outbox.kind).in_((OutboxKind.REMINDER, OutboxKind.FOLLOWUP, OutboxKind.SNOOZE)),
        or_(delivered, col(Outbox.state).in_((OutboxState.CLAIMED, OutboxState.SENDING)),
            and_(Outbox.state == OutboxState.PENDING, Outbox.due_at <= now))))).all()
    added = 0
    for row_id, state, message_id, channel, address in rows:
        payload = {"message_id": message_id} if state == OutboxState.SENT else \
            {"copy_row": row_id, "unless": except_message}  # the tapped one, delivered but not yet recorded
        added += await enqueue(session, kind=OutboxKind.REMINDER_CLOSE, to=Recipient(channel, address), due_at=now, now=now,
                               patient_id=patient.id, dose_day_id=dose.id, payload=payload,
                               dedupe_key=f"reminder_close:{row_id}:{now.isoformat()}")
    return added


def _other_messages_possible(settings, dose: DoseDay, *, tapped: int | None, now) -> bool:
    """Whether the day may have a reminder message besides the one tapped, to close: not when the
    tap was on the day's recorded reminder, with no snooze and before its first follow-up could
    be due (the common case, which then costs no query)."""
    if tapped is None or tapped != dose.reminder_message_id or dose.snoozes:
        return True
    reminders = settings.reminders
    queued = max(dose.due_at, dose.reminder_queued_at or dose.due_at)  # follow-ups count from here, or later
    return reminders.followup_count > 0 and now >= queued + timedelta(minutes=reminders.followup_minutes)


async def _record(session, *, rt, now, patient: Patient, dose: DoseDay, state: DoseState, late: bool, source: str,
                  update_id) -> bool:
    """Write one answer if the day is still in the state we read (two taps racing record once)."""
    before = dose.state
    changed = await session.exec(
        update(DoseDay).where(DoseDay.id == dose.id, DoseDay.state == before).values(
            state=state.value, answered_at=now, late=late, source=source))
    if changed.rowcount != 1:
        return False
    session.add(DoseEvent(dose_day_id=dose.id, at=now, kind="answer", from_state=before, to_state=state.value,
                          late=late, actor=f"patient:{patient.subject_id}"))
    audit(session, at=now, actor_kind="patient", actor_id=patient.subject_id, action="dose.answered",
          entity="dose_day", entity_id=dose.id, before={"state": before},
          after={"state": state.value, "late": late, "source": source, "cycle": dose.cycle, "day": dose.day},
          update_id=update_id)
    if state is DoseState.MISSED:
        await check_consecutive(session, settings=rt.settings, now=now, patient=patient, update_id=update_id)
    return True


async def answer(rt: Runtime, *, account: Account, dose_day_id: int, choice: Answer,
                 source: AnswerSource | str = AnswerSource.BUTTON, update_id: int | None = None,
                 message_id: int | None = None) -> DoseResult:
    """One answer for one day. From the day's own reminder (`button`) only while the day is open;
    a day that is over is answered only through the question about it (`late_question`: the
    next-morning question, `catch_up`: days over before registration), so `source` is what
    really happened. `message_id`: the message tapped, which the caller shows the answer on;
    the day's other reminders are closed."""
    source = AnswerSource(source)
    now = rt.now()
    async with rt.session() as session:
        patient, dose = await _authorized(session, now=now, account=account,
                                          dose_day_id=dose_day_id, what="not_yours", update_id=update_id)
        if dose is None:
            return DoseResult("not_yours")
        try:
            if source is AnswerSource.BUTTON:
                if DoseState(dose.state).answered:
                    raise DoseRuleError("already_answered", "already answered")
                if dose.state != DoseState.SCHEDULED or now >= dose.closes_at:
                    raise DoseRuleError("closed", "the day is over; its reminder no longer takes answers")
                outcome = answer_dose(state=DoseState(dose.state), answer=choice, now=now, closes_at=dose.closes_at,
                                      late_until=dose.late_until)
            else:
                outcome = answer_late(state=DoseState(dose.state), answer=choice, source=source, now=now,
                                      late_until=dose.late_until, closes_at=dose.closes_at)
        except DoseRuleError as error:
            status = {"already_answered": "already", "closed": "closed", "not_open": "not_open"}.get(error.code,
                                                                                                     "too_late")
            if status in ("closed", "not_open"):
                audit(session, at=now, actor_kind="patient", actor_id=patient.subject_id, action="dose.answer_refused",
                      entity="dose_day", entity_id=dose.id, before={"state": dose.state},
                      reason=f"{source.value}: {error.code}", update_id=update_id)
                await session.commit()
            return DoseResult(status, dose, patient)
        if not await _record(session, rt=rt, now=now, patient=patient, dose=dose, state=outcome.state,
                             late=outcome.late, source=source.value, update_id=update_id):
            patient_id = patient.id
            await session.rollback()  # the other tap won the race: report its answer, loaded afresh
            return DoseResult("already", await session.get(DoseDay, dose_day_id, populate_existing=True),
                              await session.get(Patient, patient_id, populate_existing=True))
        if _other_messages_possible(rt.settings, dose, tapped=message_id, now=now):
            await close_reminder_messages(session, now=now, dose=dose, patient=patient, except_message=message_id)
        await session.commit()  # `dose` already holds the new values (the ORM update synchronises it)
    if queued_work(session):  # an alert (missed days in a row) or edits of the day's other reminders
        rt.wake()
    return DoseResult("recorded", dose, patient)


async def catch_up_days(rt: Runtime, *, patient: Patient, course_id: int) -> list[DoseDay]:
    """Days of this course the catch-up question still asks about (over before registration,
    unanswered, recent enough)."""
    now = rt.now()
    async with rt.session() as session:
        days = (await session.exec(select(DoseDay).where(
            DoseDay.course_id == course_id, DoseDay.patient_id == patient.id,
            DoseDay.state == DoseState.BEFORE_REGISTRATION).order_by(col(DoseDay.local_date)))).all()
    return [d for d in days if catch_up_allowed(closes_at=d.closes_at, now=now)]


async def add_missed_reason(rt: Runtime, *, account: Account, dose_day_id: int, reason: str,
                            update_id: int | None = None) -> DoseResult:
    if reason not in MISSED_REASONS:
        return DoseResult("not_yours")
    now = rt.now()
    async with rt.session() as session:
        patient, dose = await _authorized(session, now=now, account=account,
                                          dose_day_id=dose_day_id, what="reason", update_id=update_id)
        if dose is None or dose.state != DoseState.MISSED:
            return DoseResult("not_yours")
        if dose.missed_reason:
            return DoseResult("already", dose, patient)
        dose.missed_reason = reason
        audit(session, at=now, actor_kind="patient", actor_id=patient.subject_id, action="dose.missed_reason",
              entity="dose_day", entity_id=dose.id, after={"reason": reason}, update_id=update_id)
        if reason in WORRYING_REASONS:  # the team needs to know today, not at the next visit
            await raise_alert(session, settings=rt.settings, now=now, site_id=patient.site_id, kind=AlertKind.MISSED_REASON,
                              patient=patient, details={"reason": reason, "date": dose.local_date.isoformat(),
                                                        "cycle": dose.cycle, "day": dose.day},
                              dedupe_key=f"missed_reason:{dose.id}", update_id=update_id)
        await session.commit()
    if queued_work(session):
        rt.wake()
    return DoseResult("reason_saved", dose, patient)


async def undo_missed(rt: Runtime, *, account: Account, dose_day_id: int,
                      update_id: int | None = None) -> DoseResult:
    """The patient takes back "Not today" while the day is open; the reminder's buttons return."""
    now = rt.now()
    async with rt.session() as session:
        patient, dose = await _authorized(session, now=now, account=account,
                                          dose_day_id=dose_day_id, what="undo", update_id=update_id)
        if dose is None:
            return DoseResult("not_yours")
        try:
            state = undo(state=DoseState(dose.state), source=dose.source, now=now, closes_at=dose.closes_at)
        except DoseRuleError as error:
            return DoseResult("closed" if error.code == "closed" else "already", dose, patient)
        changed = await session.exec(update(DoseDay).where(DoseDay.id == dose.id, DoseDay.state == DoseState.MISSED)
                                     .values(state=state.value, answered_at=None, source=None, missed_reason=None))
        if changed.rowcount != 1:
            return DoseResult("already", dose, patient)
        session.add(DoseEvent(dose_day_id=dose.id, at=now, kind="undo", from_state=DoseState.MISSED.value,
                              to_state=state.value, actor=f"patient:{patient.subject_id}"))
        audit(session, at=now, actor_kind="patient", actor_id=patient.subject_id, action="dose.undone",
              entity="dose_day", entity_id=dose.id, before={"state": "missed", "reason": dose.missed_reason},
              after={"state": state.value}, update_id=update_id)
        await session.commit()
        dose = await session.get(DoseDay, dose_day_id, populate_existing=True)
    return DoseResult("reopened", dose, patient)


async def snooze(rt: Runtime, *, account: Account, dose_day_id: int, update_id: int | None = None) -> DoseResult:
    now = rt.now()
    settings = rt.settings.reminders
    async with rt.session() as session:
        patient, dose = await _authorized(session, now=now, account=account,
                                          dose_day_id=dose_day_id, what="not_yours", update_id=update_id)
        if dose is None:
            return DoseResult("not_yours")
        try:
            due = snooze_until(state=dose.state, snoozes=dose.snoozes, now=now, closes_at=dose.closes_at,
                               minutes=settings.snooze_minutes, max_snoozes=settings.max_snoozes)
        except DoseRuleError as refused:
            return DoseResult(refused.code, dose, patient)
        dose.snoozes += 1
        session.add(DoseEvent(dose_day_id=dose.id, at=now, kind="snooze", from_state=dose.state, to_state=dose.state,
                              actor=f"patient:{patient.subject_id}"))
        audit(session, at=now, actor_kind="patient", actor_id=patient.subject_id, action="dose.snoozed",
              entity="dose_day", entity_id=dose.id, after={"snoozes": dose.snoozes, "until": due.isoformat()},
              update_id=update_id)
        await enqueue(session, kind=OutboxKind.SNOOZE, to=patient.recipient, due_at=due, now=now, patient_id=patient.id,
                      dose_day_id=dose.id, dedupe_key=f"snooze:{dose.id}:{dose.snoozes}")
        await session.commit()
        await session.refresh(dose)
    rt.wake()
    return DoseResult("snoozed", dose, patient)
