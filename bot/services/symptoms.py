"""Symptom reports: saved independently of any channel call, with their alert, in one transaction.

- One open alert per patient and level: a further report while it is open is added to it
  (symptoms merged, reports counted) and the copies already delivered are edited, never a
  new page per tap.
- The emergency advice is also an outbox row in the alert lane (`symptom_advice`, one per
  report), due a little later: the handler sends it at once and marks the row sent; if that
  send fails, the row is made due now and the courier retries it.
- Past `alerts.max_reports_per_hour` a report is still saved and merged, but no longer edits
  the team's messages (`ReportResult.throttled`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlmodel import col, select

from bot.domain.outbox import OutboxKind, OutboxState
from bot.domain.alerts import AlertKind
from bot.channels.port import EDITABLE_CHANNELS, Account, Recipient
from bot.db.models import Alert, Outbox, Patient, SymptomReport
from bot.domain.hours import next_working_start, seen_today
from bot.domain.triage import TriageLevel, triage
from bot.services.alerts import FIRST_EMERGENCY, FOLLOW_UP, raise_alert, team_reached
from bot.services import dialogs
from bot.services.audit import audit
from bot.services.outbox import ALERT_LANE, enqueue
from bot.services.family import active_helper
from bot.services.queries import patient_by_account
from bot.services.runtime import Runtime

ADVICE_KIND = OutboxKind.SYMPTOM_ADVICE
ALERT_UPDATE_KIND = OutboxKind.ALERT_UPDATE
NOTE_DIALOG = "symptom_note"
NOTE_TTL = timedelta(minutes=30)  # later text is a new message to the team, not a note
NOTE_SHOWN = 500  # characters of a note shown on the alert (the report keeps all of it)
KIND_BY_LEVEL = {TriageLevel.EMERGENCY: AlertKind.EMERGENCY_SYMPTOM, TriageLevel.SAME_DAY: AlertKind.SAME_DAY_SYMPTOM}


class ReportNotSaved(Exception):
    """The report did not reach the database: the patient must be told so."""


@dataclass(frozen=True)
class ReportResult:
    report_id: int
    level: TriageLevel
    site_id: str
    alert_id: int | None = None
    # A copy for a person is delivered or queued to a recipient its channel has not refused.
    team_reached: bool = True
    throttled: bool = False
    advice_row_id: int | None = None
    team_from: datetime | None = None  # when the team is next at work (now during working hours)
    team_today: bool = True  # whether that is still today, site-local


async def _reporter(session, *, account: Account):
    """(patient, helper or None): the patient themselves, or a family helper on their behalf."""
    patient = await patient_by_account(session, account=account)
    if patient is not None:
        return patient, None
    found = await active_helper(session, account=account)
    return (found.patient, found.helper) if found else (None, None)


def levels(settings) -> dict[str, TriageLevel]:
    return {s.code: TriageLevel[s.level.upper()] for s in settings.triage.symptoms}


def classify(settings, codes: list[str]) -> TriageLevel:
    """Pure triage, usable before saving so emergency advice never waits on the database."""
    return triage(codes, levels(settings))


async def report(rt: Runtime, *, account: Account, codes: list[str], note: str | None = None,
                 update_id: int | None = None, advice_sent_by_caller: bool = True) -> ReportResult:
    level = classify(rt.settings, codes)
    now = rt.now()
    try:
        async with rt.session() as session:
            patient, helper = await _reporter(session, account=account)
            if patient is None:
                raise ReportNotSaved("not enrolled")
            helper_id = helper.helper_id if helper else None
            actor_kind, actor_id = ("helper", helper_id) if helper else ("patient", patient.subject_id)
            reporter = helper.recipient if helper else patient.recipient
            recent = (await session.exec(select(func.count()).select_from(SymptomReport).where(
                SymptomReport.patient_id == patient.id, SymptomReport.reported_at > now - timedelta(hours=1)))).one()
            throttled = recent >= rt.settings.alerts.max_reports_per_hour
            row = SymptomReport(patient_id=patient.id, reported_at=now, symptoms=list(codes), level=level.key,
                                note=note, update_id=update_id, helper_id=helper_id)
            session.add(row)
            await session.flush()
            audit(session, at=now, actor_kind=actor_kind, actor_id=actor_id, action="symptom.reported",
                  entity="symptom_report", entity_id=row.id,
                  after={"symptoms": list(codes), "level": level.key, "throttled": throttled,
                         "subject_id": patient.subject_id}, update_id=update_id)
            advice_row_id = None
            if level is TriageLevel.EMERGENCY and reporter and not throttled:
                # Sent by the handler right away; this row is the retry if that send fails.
                grace = timedelta(seconds=rt.settings.delivery.send_timeout_seconds + 5) if advice_sent_by_caller \
                    else timedelta(0)
                await enqueue(session, kind=ADVICE_KIND, lane=ALERT_LANE, to=reporter, due_at=now + grace,
                              now=now, patient_id=patient.id, priority=FIRST_EMERGENCY,
                              payload={"report_id": row.id, **({"helper": helper.id} if helper else {})},
                              dedupe_key=f"advice:{row.id}")
                advice_row_id = (await session.exec(select(Outbox.id).where(
                    Outbox.dedupe_key == f"advice:{row.id}"))).one()
            alert_id, reached = None, True
            if level in KIND_BY_LEVEL:
                alert = await _open_alert(rt, session, patient=patient, kind=KIND_BY_LEVEL[level], codes=codes,
                                          report_id=row.id, quiet=throttled, update_id=update_id,
                                          helper_id=helper_id)
                alert_id = alert.id
                reached = await team_reached(session, rt.settings, alert)
            # The note prompt lives in the database: a restart or another process still takes the note.
            await dialogs.put(session, channel_user_id=account.key, kind=NOTE_DIALOG,
                              payload={"report": row.id}, now=now, ttl=NOTE_TTL)
            await session.commit()
            hours = rt.settings.site(patient.site_id).hours
            result = ReportResult(report_id=row.id, level=level, site_id=patient.site_id, alert_id=alert_id,
                                  team_reached=reached, throttled=throttled, advice_row_id=advice_row_id,
                                  team_from=next_working_start(hours, now), team_today=seen_today(hours, now))
    except ReportNotSaved:
        raise
    except Exception as error:  # any database failure: never a false "received"
        raise ReportNotSaved(type(error).__name__) from error
    rt.wake()
    return result


async def _open_alert(rt: Runtime, session, *, patient: Patient, kind: str, codes: list[str], report_id: int,
                      quiet: bool, update_id: int | None, helper_id: str | None = None) -> Alert:
    """The patient's open alert of this kind with this report added, or a new one. A report by a
    family helper names the helper (`details["helpers"]`)."""
    helpers = [helper_id] if helper_id else []
    now = rt.now()
    # Alerts of this kind already closed: a concurrent report computes the same key, so the
    # second insert is a no-op and both reports land in one alert.
    closed = (await session.exec(select(func.count()).select_from(Alert).where(
        Alert.patient_id == patient.id, Alert.kind == kind, col(Alert.acknowledged_at).is_not(None)))).one()
    key = f"open:{patient.id}:{kind}:{closed}"
    alert = await raise_alert(session, settings=rt.settings, now=now, site_id=patient.site_id, kind=kind,
                              patient=patient, details={"symptoms": list(codes), "report_ids": [report_id],
                                                        **({"helpers": helpers} if helpers else {})},
                              dedupe_key=key, update_id=update_id)
    if alert is not None:
        return alert
    alert = (await session.exec(select(Alert).where(Alert.dedupe_key == key))).one()
    details = dict(alert.details or {})
    merged = list(details.get("symptoms", []))
    merged += [c for c in codes if c not in merged]
    details.update(symptoms=merged, report_ids=[*details.get("report_ids", []), report_id])
    if helper_id and helper_id not in details.get("helpers", []):
        details["helpers"] = [*details.get("helpers", []), helper_id]
    await session.exec(update(Alert).where(Alert.id == alert.id).values(details=details))
    audit(session, at=now, actor_kind="helper" if helper_id else "patient", actor_id=helper_id or patient.subject_id,
          action="alert.report_added",
          entity="alert", entity_id=alert.id, after={"reports": len(details["report_ids"]), "symptoms": merged},
          update_id=update_id)
    alert.details = details
    if not quiet:
        await _queue_edits(session, alert=alert, now=now)
    return alert


async def _queue_edits(session, *, alert: Alert, now) -> None:
    """Edit the alert's copy in each chat where one is out (or on its way) to show what was added.
    A copy not yet claimed needs nothing: it renders the alert as it is when it is sent. The
    edit finds its target message when it is sent (`scheduler.compose`), so a copy in flight
    right now is edited too, once it is recorded. Where the only copies a chat has were taken by
    the channel without an answer (delivery unknown, no message to edit), the alert goes to that
    chat again as it is now: a second copy rather than a note the team never sees."""
    states: dict[tuple[str, str], set[str]] = {}
    escalated: set[tuple[str, str]] = set()
    for channel, address, state, payload in (await session.exec(select(
            Outbox.channel, Outbox.address, Outbox.state, Outbox.payload).where(  # a mail cannot be edited
            Outbox.alert_id == alert.id, Outbox.kind == OutboxKind.ALERT, col(Outbox.channel).in_(EDITABLE_CHANNELS),
            col(Outbox.state).in_([OutboxState.PENDING, OutboxState.CLAIMED, OutboxState.SENDING, OutboxState.SENT,
                                   OutboxState.UNKNOWN])))).all():
        states.setdefault((channel, address), set()).add(state)
        if payload.get("escalated"):
            escalated.add((channel, address))
    version = f"{len(alert.details.get('report_ids', []))}.{len(alert.details.get('notes', []))}"
    for (channel, address), found in states.items():
        to = Recipient(channel, address)
        if found == {OutboxState.UNKNOWN}:
            await enqueue(session, kind=OutboxKind.ALERT, lane=ALERT_LANE, to=to, due_at=now, now=now,
                          patient_id=alert.patient_id, alert_id=alert.id, priority=FOLLOW_UP,
                          payload={"round": alert.repeats, "escalated": (channel, address) in escalated},
                          dedupe_key=f"alert:{alert.id}:{to.short_key}:again:{version}")
            continue
        if found == {OutboxState.PENDING}:
            continue
        prefix = f"alert_update:{alert.id}:{address}:"
        pending = (await session.exec(select(Outbox.id).where(
            Outbox.state == OutboxState.PENDING, col(Outbox.dedupe_key).startswith(prefix)).limit(1))).first()
        if pending is None:
            await enqueue(session, kind=ALERT_UPDATE_KIND, lane=ALERT_LANE, to=to, due_at=now, now=now,
                          patient_id=alert.patient_id, alert_id=alert.id, priority=FOLLOW_UP,
                          dedupe_key=prefix + version)


async def advice_delivered(rt: Runtime, *, row_id: int, message_id: int | None) -> None:
    """The handler showed the advice itself: the retry row is done."""
    now = rt.now()
    async with rt.session() as session:
        await session.exec(update(Outbox).where(Outbox.id == row_id, Outbox.state == OutboxState.PENDING).values(
            state=OutboxState.SENT, message_id=message_id, finished_at=now, attempts=1))
        await session.commit()


async def advice_failed(rt: Runtime, *, row_id: int, error: str) -> None:
    """The handler could not show the advice: the courier retries it now, in the alert lane."""
    async with rt.session() as session:
        await session.exec(update(Outbox).where(Outbox.id == row_id, Outbox.state == OutboxState.PENDING).values(
            due_at=rt.now(), last_error=f"handler send failed: {error}"[:500]))
        await session.commit()
    rt.wake()


async def pending_note(rt: Runtime, *, account: Account) -> int | None:
    """The report whose optional note the next text is, while the prompt is open (a family
    helper's text is routed by the adapter's family handlers, before the patient's dialogs)."""
    async with rt.session() as session:
        state = await dialogs.get(session, channel_user_id=account.key, kind=NOTE_DIALOG,
                                  now=rt.now())
    return state["report"] if state else None


async def add_note(rt: Runtime, *, account: Account, note: str, update_id: int | None = None) -> bool:
    """Attach the patient's optional free-text note to the report the open prompt is about, once.
    The note itself is kept out of the audit row and the logs (it may hold anything); only its
    length is recorded. The team sees it on the alert, the patient card and the digest."""
    note = note.strip()[:2000]
    now = rt.now()
    user = account.key
    async with rt.session() as session:
        state = await dialogs.get(session, channel_user_id=user, kind=NOTE_DIALOG, now=now)
        patient, helper = await _reporter(session, account=account)
        report_row = await session.get(SymptomReport, state["report"]) if state else None
        await dialogs.clear(session, channel_user_id=user, kind=NOTE_DIALOG)
        if not note or patient is None or report_row is None or report_row.patient_id != patient.id \
                or report_row.note is not None:
            await session.commit()
            return False
        report_row.note = note
        session.add(report_row)
        audit(session, at=now, actor_kind="helper" if helper else "patient",
              actor_id=helper.helper_id if helper else patient.subject_id, action="symptom.note_added",
              entity="symptom_report", entity_id=report_row.id, after={"note_length": len(note)}, update_id=update_id)
        await _note_on_alert(session, patient_id=patient.id, report_id=report_row.id, note=note, now=now,
                             helper_id=helper.helper_id if helper else None)
        await session.commit()
    rt.wake()
    return True


async def _note_on_alert(session, *, patient_id: int, report_id: int, note: str, now, helper_id: str | None) -> None:
    """The team sees the note: added to the alert that carries the report, its copies edited.
    A patient's note is kept as text; a helper's names the helper, so nobody reads it as the
    patient's own words."""
    candidates = (await session.exec(select(Alert).where(
        Alert.patient_id == patient_id, col(Alert.kind).in_(list(KIND_BY_LEVEL.values())))
        .order_by(col(Alert.id).desc()).limit(20))).all()
    alert = next((a for a in candidates if report_id in (a.details or {}).get("report_ids", [])), None)
    if alert is None:  # a log-level report has no alert: the card and the digest show its note
        return
    details = dict(alert.details)
    entry = {"helper": helper_id, "text": note[:NOTE_SHOWN]} if helper_id else note[:NOTE_SHOWN]
    details["notes"] = [*details.get("notes", []), entry]
    alert.details = details
    session.add(alert)
    if alert.acknowledged_at is None:
        await _queue_edits(session, alert=alert, now=now)
