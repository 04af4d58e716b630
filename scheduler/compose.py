"""Composing: one claimed outbox row → the message to send now, or why not (skip, defer).

Decided from the current state of the row's day, patient, course or alert, never from what was
true when the row was queued: a day answered meanwhile is not reminded, an acknowledged alert
is not repeated. The result is channel-neutral (`bot.channels.port.OutgoingMessage`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from bot.domain.status import CourseStatus, PatientStatus
from bot.channels.port import Actions, ChannelName, OutgoingMessage, Recipient, EDITABLE_CHANNELS
from bot.config import Settings
from bot.db.models import Alert, AlertMessage, ConmedReport, Course, DoseDay, Helper, Outbox, Patient, \
    PatientMessage, TabletCount, Visit
from bot.domain.adherence import adherence
from bot.domain.dose import DoseState, catch_up_allowed
from bot.domain.outbox import OutboxKind, IN_PROGRESS, OutboxState
from bot.i18n import Translator
from bot.render import accountability as render_accountability
from bot.render import conmed as render_conmed
from bot.render import coordinator as render_coordinator
from bot.render import patient as render_patient
from bot.render import email as render_email
from bot.render import family as render_family
from bot.render import visits as render_visits
from bot.services.accountability import COUNT_KIND as TABLET_COUNT
from bot.services import family
from bot.services.alerts import ack_key, code_for
from bot.services.conmed import CHECK_KIND as CONMED_CHECK
from bot.services.messages import RELAY_MEDIA_KIND, STAFF_REPLY_KIND
from bot.services.symptoms import ADVICE_KIND, ALERT_UPDATE_KIND
from bot.services.visits import REMINDER_KIND as VISIT_REMINDER
from bot.services import digest as digest_service
from scheduler import digests

PATIENT_KINDS = (OutboxKind.REMINDER, OutboxKind.FOLLOWUP, OutboxKind.SNOOZE, OutboxKind.LATE_QUESTION,
                 OutboxKind.COURSE_PLAN, OutboxKind.COURSE_END, OutboxKind.CATCH_UP, OutboxKind.COURSE_CANCELLED,
                 OutboxKind.REMINDER_CLOSE, ADVICE_KIND, STAFF_REPLY_KIND, CONMED_CHECK,
                 TABLET_COUNT, VISIT_REMINDER)
DOSE_KINDS = (OutboxKind.REMINDER, OutboxKind.FOLLOWUP, OutboxKind.SNOOZE)


def _message(text: str, actions: Actions | None, *, protect: bool, edit_of: int | None = None) -> OutgoingMessage:
    return OutgoingMessage(text, actions or (), protected=protect, edit_of=edit_of)


@dataclass(frozen=True)
class Skip:
    reason: str


@dataclass(frozen=True)
class Defer:
    until: datetime
    reason: str


Plan = OutgoingMessage | Skip | Defer


@dataclass
class Loaded:
    """What a batch of rows needs to be rendered, fetched in a handful of queries."""

    patients: dict[int, Patient] = field(default_factory=dict)
    doses: dict[int, DoseDay] = field(default_factory=dict)
    alerts: dict[int, Alert] = field(default_factory=dict)
    courses: dict[int, Course] = field(default_factory=dict)
    course_states: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    reminders: dict[int, tuple[str, datetime | None]] = field(default_factory=dict)  # dose id → (state, sent at)
    messages: dict[int, PatientMessage] = field(default_factory=dict)  # staff replies to send
    alert_copies: dict[tuple[int, str], int] = field(default_factory=dict)  # (alert, chat) → latest message id
    copy_rows: dict[int, Outbox] = field(default_factory=dict)  # messages in flight an edit follows, by row id
    copies_in_flight: set[tuple[int, str]] = field(default_factory=set)  # (alert, chat) still being sent
    catch_up_days: dict[int, list[DoseDay]] = field(default_factory=lambda: defaultdict(list))  # course id → days
    conmed_answered: set[tuple[int, str]] = field(default_factory=set)  # (course id, check point) answered
    tablets_counted: set[int] = field(default_factory=set)  # course ids whose tablet count is in
    visits: dict[int, Visit] = field(default_factory=dict)  # visit reminders' visits
    helpers: dict[int, Helper] = field(default_factory=dict)  # helper notices' and helper advice's helpers
    translators: dict[tuple[str, str], Translator] = field(default_factory=dict)
    ack_key: bytes = b""  # behind the acknowledgement codes of mailed alerts
    digests: dict[tuple[str, str, str], digest_service.Digest] = field(default_factory=dict)  # (site, since, at)

    def translator(self, locale: str, tz: str) -> Translator:
        key = (locale, str(tz))
        if key not in self.translators:
            self.translators[key] = Translator(locale, tz)
        return self.translators[key]


def recipient_translator(settings: Settings, recipient: Recipient, patient: Patient | None,
                         loaded: Loaded | None = None) -> Translator:
    """The reader's language: the patient's, a coordinator's own, else the site's default."""
    make = loaded.translator if loaded is not None else Translator
    if patient is not None and patient.address is not None and recipient == patient.recipient:
        return make(patient.locale, patient.timezone)
    return render_coordinator.reader_translator(
        settings, recipient, settings.sites[0].id if patient is None else patient.site_id, make=make)


def _recipient(row: Outbox) -> Recipient:
    return Recipient(row.channel, row.address)


def _to_helper(row: Outbox, helper: Helper) -> bool:
    return helper.address is not None and _recipient(row) == helper.recipient


def _to_patient(row: Outbox, patient: Patient) -> bool:
    """The row still addresses the patient's current chat (not one they have moved away from)."""
    return patient.address is not None and _recipient(row) == patient.recipient


def _digest_window(row: Outbox) -> tuple[str, str, str]:
    return row.payload["site"], row.payload["since"], row.payload["at"]


async def load(session, rows: list[Outbox], *, now: datetime, settings: Settings) -> Loaded:
    loaded = Loaded()
    if any(r.channel == ChannelName.EMAIL for r in rows):
        loaded.ack_key = await ack_key(session, now=now)
        await session.commit()  # created once; every later mail's code uses the same key

    async def fetch(model, ids, *, share: bool = False):
        ids = {i for i in ids if i is not None}
        if not ids:
            return {}
        statement = select(model).where(col(model.id).in_(ids))
        return {o.id: o for o in (await session.exec(statement.with_for_update(read=True) if share
                                                     else statement)).all()}

    loaded.patients = await fetch(Patient, (r.patient_id for r in rows))
    loaded.doses = await fetch(DoseDay, (r.dose_day_id for r in rows))
    # FOR SHARE (PostgreSQL; SQLite serialises writers anyway): a transaction adding a report or
    # a note to an alert, or acknowledging it, holds its row while it looks for copies to edit. A
    # copy it did not see (still pending) waits here for that commit and renders what it wrote,
    # instead of reading the alert as it was and going out without it.
    loaded.alerts = await fetch(Alert, (r.alert_id for r in rows), share=True)
    loaded.messages = await fetch(PatientMessage, (r.payload.get("message_id") for r in rows
                                                   if r.kind == STAFF_REPLY_KIND))
    loaded.copy_rows = await fetch(Outbox, (r.payload.get("copy_row") for r in rows
                                            if r.kind in (ALERT_UPDATE_KIND, OutboxKind.REMINDER_CLOSE)))
    updating = {r.alert_id for r in rows if r.kind == ALERT_UPDATE_KIND and "copy_row" not in r.payload} - {None}
    if updating:
        # In-flight copies first, recorded copies second: a copy finishing between the two reads
        # (its row marked sent and its message recorded in one commit) is then seen by one or the
        # other. In the other order it can slip between them and the edit is dropped.
        loaded.copies_in_flight = set((await session.exec(
            select(Outbox.alert_id, Outbox.address).where(col(Outbox.channel).in_(EDITABLE_CHANNELS), col(Outbox.alert_id).in_(updating), Outbox.kind == OutboxKind.ALERT,
                                                         col(Outbox.state).in_(IN_PROGRESS))
        )).all())
        for alert_id, address, message_id in (await session.exec(
                select(AlertMessage.alert_id, AlertMessage.address, AlertMessage.message_id)
                .where(col(AlertMessage.alert_id).in_(updating), col(AlertMessage.channel).in_(EDITABLE_CHANNELS))
                .order_by(col(AlertMessage.id)))).all():
            loaded.alert_copies[(alert_id, address)] = message_id
    course_ids = {r.payload.get("course_id") for r in rows
                  if r.kind in ("course_plan", "course_end", "catch_up", "course_cancelled", CONMED_CHECK,
                                TABLET_COUNT, family.NOTICE_KIND)}
    loaded.courses = await fetch(Course, course_ids)
    ending = {r.payload.get("course_id") for r in rows if r.kind == OutboxKind.COURSE_END} - {None}
    if ending:
        for course_id, state in (await session.exec(select(DoseDay.course_id, DoseDay.state).where(
                col(DoseDay.course_id).in_(ending), DoseDay.out_of_window.is_(False)))).all():
            loaded.course_states[course_id].append(state)
    following = {r.dose_day_id for r in rows if r.kind == OutboxKind.FOLLOWUP}
    if following:
        for dose_id, state, finished in (await session.exec(
                select(Outbox.dose_day_id, Outbox.state, Outbox.finished_at)
                .where(Outbox.kind == OutboxKind.REMINDER, col(Outbox.dose_day_id).in_(following)))).all():
            loaded.reminders[dose_id] = (state, finished)
    await _load_course_context(session, rows, loaded)
    checking = {r.payload.get("course_id") for r in rows if r.kind == CONMED_CHECK} - {None}
    if checking:
        loaded.conmed_answered = set((await session.exec(select(ConmedReport.course_id, ConmedReport.check_point)
                                                          .where(col(ConmedReport.course_id).in_(checking)))).all())
    loaded.visits = await fetch(Visit, (r.payload.get("visit_id") for r in rows if r.kind == VISIT_REMINDER))
    loaded.helpers = await fetch(Helper, (r.payload.get("helper") for r in rows
                                          if r.kind in (family.NOTICE_KIND, ADVICE_KIND)))
    for window in {_digest_window(r) for r in rows if r.kind == digests.KIND}:
        site_id, since, at = window
        loaded.digests[window] = await digest_service.build_in(
            session, settings=settings, site_id=site_id, now=datetime.fromisoformat(at),
            since=datetime.fromisoformat(since))
    counting = {r.payload.get("course_id") for r in rows if r.kind == TABLET_COUNT} - {None}
    if counting:
        loaded.tablets_counted = set((await session.exec(select(TabletCount.course_id).where(
            col(TabletCount.course_id).in_(counting)))).all())
    return loaded


async def _load_course_context(session, rows: list[Outbox], loaded: Loaded) -> None:
    """The days a catch-up question asks about (those not answered since it was queued)."""
    catching_up = {r.payload.get("course_id") for r in rows if r.kind == OutboxKind.CATCH_UP} - {None}
    if catching_up:
        for dose in (await session.exec(select(DoseDay).where(
                col(DoseDay.course_id).in_(catching_up), DoseDay.state == DoseState.BEFORE_REGISTRATION)
                .order_by(col(DoseDay.local_date)))).all():
            loaded.catch_up_days[dose.course_id].append(dose)


def prepare(loaded: Loaded, *, settings: Settings, row: Outbox, now: datetime) -> Plan:
    """What to do with one claimed row, decided from the current state of its day, patient or alert."""
    plan = _prepare(loaded, settings=settings, row=row, now=now)
    if isinstance(plan, OutgoingMessage) and row.resends and row.kind in PATIENT_KINDS and plan.edit_of is None:
        patient = loaded.patients.get(row.patient_id) if row.patient_id else None
        marker = _resent_marker(recipient_translator(settings, _recipient(row), patient, loaded), row)
        plan = replace(plan, text=marker + plan.text)
    return plan


def _prepare(loaded: Loaded, *, settings: Settings, row: Outbox, now: datetime) -> Plan:
    patient = loaded.patients.get(row.patient_id) if row.patient_id else None
    t = recipient_translator(settings, _recipient(row), patient, loaded)
    if row.kind == digests.KIND:  # the morning digest: its window fixed when queued, its state current
        return _prepare_digest(loaded, settings=settings, row=row)
    if row.kind == RELAY_MEDIA_KIND:  # the patient's voice note, photo …, right after its alert
        alert = loaded.alerts.get(row.alert_id)
        if alert is None:
            return Skip("alert missing")
        return OutgoingMessage("", protected=True,
                               copy_of=(str(row.payload["from_chat_id"]), int(row.payload["message_id"])))
    if row.kind in ("alert", ALERT_UPDATE_KIND):
        alert = loaded.alerts.get(row.alert_id)
        if alert is None:
            return Skip("alert missing")
        if alert.acknowledged_at is not None and not row.payload.get("acknowledged"):
            return Skip("alert already acknowledged")
        target = None
        if row.kind == ALERT_UPDATE_KIND and "copy_row" in row.payload:  # one copy that was in flight
            target = _followed_message(loaded, row, now)
            if not isinstance(target, int):
                return target
        elif row.kind == ALERT_UPDATE_KIND:
            target = row.payload.get("message_id") or loaded.alert_copies.get((alert.id, row.address))
            if target is None:
                if (alert.id, row.address) in loaded.copies_in_flight:
                    return Defer(now + timedelta(seconds=1), "alert copy still being sent")
                return Skip("no copy of the alert in this chat")
        if row.channel == ChannelName.EMAIL:
            return _alert_mail(loaded, settings=settings, row=row, alert=alert, t=t)
        text, markup = render_coordinator.alert_message(t, settings, alert, escalated=bool(row.payload.get("escalated")),
                                                        repeat=int(row.payload.get("round") or 0)
                                                        if row.kind == OutboxKind.ALERT else 0)
        return _message(text, markup, protect=False, edit_of=target)
    if row.kind == STAFF_REPLY_KIND:  # an answer to what the patient sent: even while reminders are paused
        message = loaded.messages.get(row.payload.get("message_id"))
        if patient is None or message is None or patient.status == PatientStatus.WITHDRAWN or not _to_patient(row, patient):
            return Skip("patient withdrawn, moved or missing")
        return _message(render_patient.staff_reply(t, message.text or ""), None, protect=True)
    if row.kind == ADVICE_KIND and row.payload.get("helper"):  # advice to the helper who reported
        helper = loaded.helpers.get(row.payload["helper"])
        if patient is None or helper is None or not _to_helper(row, helper):
            return Skip("helper missing")
        return _message(render_patient.emergency_advice(loaded.translator(helper.locale, patient.timezone),
                                                        settings.site(patient.site_id)), None, protect=False)
    if row.kind == ADVICE_KIND:  # emergency advice: whatever the patient's status, as long as we can reach them
        if patient is None or not _to_patient(row, patient):
            return Skip("patient missing or moved to another chat")
        return _message(render_patient.emergency_advice(t, settings.site(patient.site_id)), None, protect=False)
    if row.kind == family.NOTICE_KIND:
        return _prepare_helper_notice(loaded, settings=settings, row=row, patient=patient)
    if row.kind in ("reminder_close", "course_cancelled"):
        return _prepare_course_news(loaded, settings=settings, row=row, patient=patient, t=t, now=now)
    if patient is None or patient.status != PatientStatus.ACTIVE:
        return Skip(f"patient {patient.status if patient else 'missing'}")
    if patient.unreachable:
        return Skip("patient unreachable")
    if row.kind == OutboxKind.CATCH_UP:
        course = loaded.courses.get(row.payload.get("course_id"))
        days = [d for d in loaded.catch_up_days.get(row.payload.get("course_id"), [])
                if catch_up_allowed(closes_at=d.closes_at, now=now)]
        if course is None or course.status != CourseStatus.ACTIVE or not days:
            return Skip("nothing to ask about")
        text, markup = render_patient.catch_up_question(t, settings, days)
        return _message(text, markup, protect=True)
    if row.kind in ("reminder", "followup", "snooze", "late_question"):
        dose = loaded.doses.get(row.dose_day_id)
        if dose is None:
            return Skip("dose day missing")
        if row.kind == OutboxKind.LATE_QUESTION:
            if dose.state != DoseState.NOT_REPORTED:
                return Skip(f"day already {dose.state}")
            if now >= dose.late_until:
                return Skip("too late to ask about the day")
            text, markup = render_patient.late_question(t, settings, dose)
            return _message(text, markup, protect=True)
        if dose.state == DoseState.NOT_REPORTED or (dose.state == DoseState.SCHEDULED and now >= dose.closes_at):
            return Skip("day closed before it could be sent")
        if dose.state != DoseState.SCHEDULED:
            return Skip(f"day already answered ({dose.state})")
        if row.kind == OutboxKind.FOLLOWUP:
            deferred = _follow_up_too_soon(loaded, settings=settings, row=row, dose=dose, patient=patient, now=now)
            if deferred is not None:
                return deferred
        text, markup = render_patient.reminder(t, settings, dose, follow_up=row.kind != OutboxKind.REMINDER)
        return _message(text, markup, protect=True)
    if row.kind == CONMED_CHECK:
        return _prepare_conmed(loaded, settings=settings, row=row, t=t)
    if row.kind == VISIT_REMINDER:
        visit = loaded.visits.get(row.payload.get("visit_id"))
        if not settings.visits.enabled:
            return Skip("visit reminders switched off")
        if visit is None or visit.status != "scheduled":
            return Skip(f"visit {visit.status if visit else 'missing'}")
        if row.payload.get("at") != visit.at.isoformat():
            return Skip("visit moved")
        if now >= visit.at:
            return Skip("visit time passed")
        text, markup = render_visits.reminder(t, settings, settings.site(patient.site_id), visit,
                                              row.payload.get("which"))
        return _message(text, markup, protect=True)
    if row.kind == TABLET_COUNT:
        course = loaded.courses.get(row.payload.get("course_id"))
        if not settings.accountability.enabled:
            return Skip("tablet accountability switched off")
        if course is None or course.status != CourseStatus.ACTIVE:
            return Skip("course cancelled")
        if course.id in loaded.tablets_counted:
            return Skip("already answered")
        text, markup = render_accountability.question(t, settings, course.id, course.cycle)
        return _message(text, markup, protect=True)
    if row.kind in ("course_plan", "course_end"):
        course = loaded.courses.get(row.payload.get("course_id"))
        if course is None or course.status != CourseStatus.ACTIVE:
            return Skip("course cancelled")
        if row.kind == OutboxKind.COURSE_PLAN:
            text, markup = render_patient.course_plan(t, settings, course, patient.reminder_time,
                                                      was=row.payload.get("was"))
        else:
            states = loaded.course_states.get(course.id, [])
            text, markup = render_patient.course_end(t, settings, course, adherence(DoseState(s) for s in states))
        return _message(text, markup, protect=True)
    return Skip(f"unknown kind {row.kind}")


def _prepare_digest(loaded: Loaded, *, settings: Settings, row: Outbox) -> Plan:
    built = loaded.digests[_digest_window(row)]
    texts = digests.digest_texts(settings, built, _recipient(row))
    text = digests.part_text(texts, part=int(row.payload["part"]), parts=int(row.payload["parts"]))
    if text is None:
        return Skip("the digest is shorter than when it was queued")
    return OutgoingMessage(text)


def _alert_mail(loaded: Loaded, *, settings: Settings, row: Outbox, alert: Alert, t: Translator) -> Plan:
    """An alert by mail: no buttons, so it carries its recipient's acknowledgement code; never edited."""
    if row.kind != OutboxKind.ALERT:
        return Skip("a mail cannot be edited")
    code = code_for(loaded.ack_key, alert_id=alert.id, recipient=_recipient(row))
    subject, body = render_email.alert_mail(t, settings, alert, code=code, escalated=bool(row.payload.get("escalated")),
                                            repeat=int(row.payload.get("round") or 0))
    return OutgoingMessage(body, subject=subject)


def _prepare_helper_notice(loaded: Loaded, *, settings: Settings, row: Outbox, patient: Patient | None) -> Plan:
    """A family helper's notice (or the patient's notice that a helper joined): only while the
    feature is on, the patient active and consenting, and the helper still bound."""
    notice, helper = row.payload.get("notice"), loaded.helpers.get(row.payload.get("helper"))
    if not settings.helpers.enabled:
        return Skip("helpers switched off")
    if patient is None or patient.status != PatientStatus.ACTIVE or patient.unreachable:
        return Skip(f"patient {patient.status if patient else 'missing'}")
    if helper is None or helper.status != family.ACTIVE or patient.helper_consent_at is None:
        return Skip("helper removed or consent withdrawn")
    if notice == family.JOINED:
        if not _to_patient(row, patient):
            return Skip("patient moved to another chat")
        t = loaded.translator(patient.locale, patient.timezone)
        return _message(render_family.joined_notice(t, helper.helper_id), None, protect=True)
    if not _to_helper(row, helper):
        return Skip("helper moved")
    t = loaded.translator(helper.locale, patient.timezone)
    if notice == family.COURSE_START:
        course = loaded.courses.get(row.payload.get("course_id"))
        if course is None or course.status != CourseStatus.ACTIVE:
            return Skip("course cancelled")
        return _message(render_family.course_start(t, settings, course), None, protect=True)
    dose = loaded.doses.get(row.dose_day_id)
    if notice != family.NOT_REPORTED or dose is None or dose.state != DoseState.NOT_REPORTED:
        return Skip("day answered since")
    return _message(render_family.not_reported(t, settings, dose.local_date), None, protect=True)


def _prepare_conmed(loaded: Loaded, *, settings: Settings, row: Outbox, t: Translator) -> Plan:
    """The prohibited-medicine question: only while the feature is on, its course is live and
    that check has not been answered."""
    course_id, point = row.payload.get("course_id"), row.payload.get("point")
    course = loaded.courses.get(course_id)
    if not settings.conmed.enabled:
        return Skip("prohibited-medicine check switched off")
    if course is None or course.status != CourseStatus.ACTIVE:
        return Skip("course cancelled")
    if (course_id, point) in loaded.conmed_answered:
        return Skip("already answered")
    text, markup = render_conmed.question(t, settings, course_id, point)
    return _message(text, markup, protect=True)


def _resent_marker(t: Translator, row: Outbox) -> str:
    """A row re-queued after a crash left its send in doubt may be a duplicate: say so first."""
    if not row.resends:
        return ""
    if row.kind in DOSE_KINDS:
        return "⚠ " + t._("You may have received this already. Take only one dose today.") + "\n\n"
    return "⚠ " + t._("You may have received this message already.") + "\n\n"


def _prepare_course_news(loaded: Loaded, *, settings: Settings, row: Outbox, patient: Patient | None,
                         t: Translator, now: datetime) -> Plan:
    """Closing a day's reminder (an edit) and telling the patient a course was cancelled: also
    while reminders are paused (a held day's buttons must go too), never after withdrawal."""
    if patient is None or patient.status == PatientStatus.WITHDRAWN or patient.unreachable:
        return Skip(f"patient {patient.status if patient else 'missing'}")
    if row.kind == OutboxKind.COURSE_CANCELLED:
        course = loaded.courses.get(row.payload.get("course_id"))
        if course is None:
            return Skip("course missing")
        text, markup = render_patient.cancelled_course(t, settings, course)
        return _message(text, markup, protect=True)
    if "copy_row" in row.payload:  # a reminder that was on its way when the day was answered or closed
        target = _followed_message(loaded, row, now)
        if not isinstance(target, int):
            return target
    else:
        target = row.payload.get("message_id")
    dose = loaded.doses.get(row.dose_day_id)
    if dose is None or not target:
        return Skip("nothing to close")
    text, _ = render_patient.closed_reminder(t, settings, dose)
    return _message(text, None, protect=True, edit_of=int(target))


def _followed_message(loaded: Loaded, row: Outbox, now: datetime) -> int | Plan:
    """The message an edit of a message that was on its way is for: its id once delivered; wait
    while it is still in the courier's hands; nothing if it was never delivered."""
    followed = loaded.copy_rows.get(row.payload["copy_row"])
    if followed is not None and followed.state in IN_PROGRESS:  # a pending one is not looked at before it is due
        again = max(now, followed.due_at if followed.state == OutboxState.PENDING else now) + timedelta(seconds=1)
        return Defer(again, "the message to edit is still being sent")
    if followed is None or followed.state != OutboxState.SENT or followed.message_id is None:
        return Skip("the message to edit was not delivered")
    if followed.message_id == row.payload.get("unless"):
        return Skip("the message to edit is the one the patient answered on")
    return followed.message_id


def _follow_up_too_soon(loaded: Loaded, *, settings: Settings, row: Outbox, dose: DoseDay, patient: Patient,
                        now: datetime) -> Plan | None:
    """A follow-up goes out `k` intervals after its reminder really did, not after it was due."""
    state, sent_at = loaded.reminders.get(dose.id, ("missing", None))
    gap = timedelta(minutes=settings.reminders.followup_minutes * int(row.payload.get("k", 1)))
    if state in IN_PROGRESS:
        until = now + gap
    elif state == OutboxState.SENT and sent_at is not None and now < sent_at + gap - timedelta(seconds=1):
        until = sent_at + gap
    else:
        return None  # reminder unknown, skipped or failed: the follow-up is the safety net
    if until >= dose.closes_at or settings.reminders.quiet_hours.contains(until, ZoneInfo(patient.timezone)):
        return Skip("no time left for a follow-up after the late reminder")
    return Defer(until, "follow-up moved after its late reminder")
