"""What coordinators read: alerts (with Acknowledge, and Confirm / Correct for a course the
patient reported), help, refusals. Lists, cards, the digest and reports are in the
coord_* modules (invitations, courses, patients, reports)."""

from __future__ import annotations

import unicodedata

from bot.channels.port import Action, Actions, Recipient
from bot.render.actions import buttons
from bot.config import Settings
from bot.db.models import Alert
from bot.i18n import Translator
from bot.render import callbacks as cb
from bot.render import accountability as render_accountability
from bot.render import conmed as render_conmed
from bot.render import visits as render_visits
from bot.domain.alerts import AlertKind, is_notice
from bot.services.staff import staff_label


def reader_translator(settings: Settings, reader: Recipient, site_id: str, *, make=Translator) -> Translator:
    """The language of a staff reader: a coordinator's own, else the site's alert-chat default.
    `make(locale, tz)` builds it (the courier passes its cache)."""
    for any_site in settings.sites:
        for coordinator in any_site.coordinators:
            if reader in coordinator.recipients:
                return make(coordinator.locale, any_site.timezone)
    return make("zh_Hans", settings.site(site_id).timezone)


def printable(text: str) -> str:
    """A patient's words as written, minus control and format characters (newlines kept)."""
    return "".join(c for c in text if c in "\n\t" or unicodedata.category(c)[0] != "C")


def missed_reason_label(t: Translator, reason: str) -> str:
    return {"doctor": t._("Patient says a doctor told them to stop"), "side_effects": t._("Side effects"),
            "ran_out": t._("Patient has no tablets left"), "forgot": t._("Forgot"), "other": t._("Other")}.get(
        reason, reason)


def alert_title(t: Translator, kind: str) -> str:
    return {
        AlertKind.EMERGENCY_SYMPTOM: "🚨 " + t._("EMERGENCY symptom report"),
        AlertKind.SAME_DAY_SYMPTOM: "⚠ " + t._("Symptom report: call the patient today"),
        AlertKind.CONSECUTIVE_MISSED: "⚠ " + t._("Consecutive doses missed or not reported"),
        AlertKind.UNREACHABLE: "⚠ " + t._("Patient unreachable (blocked the bot)"),
        AlertKind.PATIENT_COURSE_START: "ℹ " + t._("Patient reports chemotherapy finished: confirm the course"),
        AlertKind.PATIENT_PAUSED: "ℹ " + t._("Patient paused reminders"),
        AlertKind.PATIENT_RESUMED: "ℹ " + t._("Reminders resumed"),
        AlertKind.NEW_ENROLMENT: "ℹ " + t._("New enrolment"),
        AlertKind.PATIENT_MESSAGE: "💬 " + t._("Message from a patient"),
        AlertKind.MISSED_REASON: "⚠ " + t._("Dose not taken, for a reason to follow up today"),
        AlertKind.PATIENT_COURSE_CONFLICT: "⚠ " + t._("Patient's chemotherapy end does not match the registered course"),
        AlertKind.CONMED_REPORTED: "⚠ " + t._("Possible prohibited concomitant medication: contact the patient today"),
        AlertKind.TABLET_COUNT_DIFFERENCE: "ℹ " + t._("Tablets left differ from the dose record"),
        AlertKind.VISIT_CHANGE_REQUEST: "ℹ " + t._("Patient asks to change a visit"),
    }[kind]


def alert_summary(t: Translator, alert: Alert) -> str:
    """One line for lists (the card, the digest): the title and, for a missed-dose reason, which."""
    details = alert.details or {}
    if alert.kind == AlertKind.PATIENT_MESSAGE:
        return _message_title(t, alert)
    if alert.kind == AlertKind.CONMED_REPORTED and details.get("conmed_category"):
        return f"{alert_title(t, alert.kind)}: {conmed_category_label(t, alert)}"
    if alert.kind == AlertKind.MISSED_REASON and details.get("reason"):
        return f"{alert_title(t, alert.kind)}: {missed_reason_label(t, details['reason'])} ({details.get('date')})"
    return alert_title(t, alert.kind)


def conmed_category_label(t: Translator, alert: Alert) -> str:
    """The pick-list label, from the alert itself (the configuration may have changed since)."""
    return (alert.details or {}).get("conmed_category") or "—"


def _message_title(t: Translator, alert: Alert) -> str:
    if alert.level == "emergency":
        return "🚨 " + t._("Patient's message: EMERGENCY words")
    if alert.level == "same_day":
        return "⚠ " + t._("Patient's message: call the patient today")
    return alert_title(t, alert.kind)


def _media_label(t: Translator, media: str) -> str:
    return {"voice": t._("voice message (copy below)"), "audio": t._("audio (copy below)"),
            "photo": t._("photo (copy below)"), "video": t._("video (copy below)"),
            "document": t._("file (copy below)"), "sticker": t._("sticker"), "animation": t._("animation"),
            "location": t._("location (copy below)"), "contact": t._("contact card (copy below)")}.get(
        media, t._("message (copy below)"))


def alert_message(t: Translator, settings: Settings, alert: Alert, *, escalated: bool = False, repeat: int = 0,
                  acknowledged_by: str | None = None) -> tuple[str, Actions | None]:
    """`repeat`: which repeat this copy is (0 = the first copy); `escalated`: the copy went to the
    escalation contact (the header stays after the acknowledgement)."""
    details = alert.details or {}
    title = _message_title(t, alert) if alert.kind == AlertKind.PATIENT_MESSAGE else alert_title(t, alert.kind)
    lines = [title, t._("Subject: {subject}", subject=details.get("subject_id") or "—"),
             t._("Raised: {when}", when=t.datetime(alert.created_at))]
    symptoms = settings.triage.by_code()
    if details.get("symptoms"):
        lines += ["• " + symptoms[c].label(t.locale) for c in details["symptoms"] if c in symptoms]
    if details.get("media") and details["media"] != "text":
        lines.append("📎 " + _media_label(t, details["media"]))
    if details.get("text"):
        lines.append("“" + printable(details["text"]) + "”")
    for note in details.get("notes", []):
        if isinstance(note, dict):  # written by a family helper
            lines.append("✎ " + t._("Note from helper {helper}: {note}", helper=note.get("helper") or "—",
                                    note=printable(note.get("text") or "")))
        else:
            lines.append("✎ " + t._("Patient's note: {note}", note=printable(note)))
    if details.get("helpers"):
        lines.append("👪 " + t._("Reported by helper {helper} on the patient's behalf",
                                helper=", ".join(details["helpers"])))
    if len(details.get("report_ids", [])) > 1:
        lines.append(t._("Reports from the patient while this alert is open: {count}",
                         count=len(details["report_ids"])))
    if details.get("reason"):
        lines.append(missed_reason_label(t, details["reason"]) + (
            " — " + t._("cycle {cycle}, day {day} ({date})", cycle=details.get("cycle"), day=details.get("day"),
                        date=details.get("date")) if details.get("date") else ""))
    if alert.kind == AlertKind.CONMED_REPORTED:
        lines += render_conmed.alert_lines(t, settings, details)
    if alert.kind == AlertKind.VISIT_CHANGE_REQUEST:
        lines += render_visits.alert_lines(t, settings, details)
    if alert.kind == AlertKind.TABLET_COUNT_DIFFERENCE:
        lines += render_accountability.alert_lines(t, details)
    if details.get("days"):
        lines.append(t._("Days in a row: {days}", days=details["days"]))
    if details.get("chemo_end"):
        lines.append(t._("Chemotherapy end reported: {date}", date=details["chemo_end"]))
    if repeat > 0 and alert.acknowledged_at is None:  # not a new alert: the same one, still waiting
        lines.insert(1, "🔁 " + t._("Still not acknowledged (reminder {number}, first raised at {time})",
                                    number=repeat + 1, time=t.time(alert.created_at)))
    if escalated:
        lines.insert(0, t._("ESCALATED: not acknowledged in time"))
    if alert.acknowledged_at is not None:
        who = acknowledged_by or staff_label(settings, alert.acknowledged_by) or "—"  # a person, never an id
        lines.append("✅ " + t._("Acknowledged by {who} at {when}", who=who,
                                 when=t.datetime(alert.acknowledged_at)))
        if alert.kind == AlertKind.PATIENT_MESSAGE and alert.patient_id:  # a reply is still possible
            return "\n".join(lines), buttons([[Action(t._("Reply"), data=cb.reply(alert.id))]])
        return "\n".join(lines), None
    if is_notice(alert.kind):  # for information: nothing to acknowledge
        return "\n".join(lines + [t._("For your information; no reply needed.")]), None
    rows = [[Action(t._("Acknowledge"), data=cb.ack(alert.id))]]
    if alert.kind == AlertKind.PATIENT_MESSAGE and alert.patient_id:
        rows[0].append(Action(t._("Reply"), data=cb.reply(alert.id)))
    if alert.kind == AlertKind.PATIENT_COURSE_START and details.get("course_id"):
        rows.insert(0, [Action(t._("Confirm course"), data=cb.course_confirm(alert.id)),
                        Action(t._("Correct date"), data=cb.course_correct(alert.id))])
    return "\n".join(lines), buttons(rows)


def help_text(t: Translator, settings: Settings, home_site: str | None) -> str:
    """The study team's commands, with examples in the caller's own site's subject ids."""
    subject = f"{home_site or settings.sites[0].id}-017"
    lines = [
        t._("Study team commands:"),
        "/patients — " + t._("your site's patients"),
        f"/patient {subject} — " + t._("one patient: courses, days, symptoms, alerts"),
        f"/invite {subject} — " + t._("invitation link and QR code"),
        "/invites — " + t._("open invitations (revoke)"),
        f"/cycle {subject} 2026-12-01 — " + t._("register the next cycle (chemotherapy end date)"),
        f"/correct {subject} 2026-12-03 — " + t._("correct a course's chemotherapy end date"),
        f"/cancelcycle {subject} — " + t._("cancel a course"),
        f"/dose {subject} 2026-12-03 taken REASON — " + t._("correct one dose day (taken, missed, not_reported)"),
        f"/pause {subject}, /resume {subject} — " + t._("pause or resume reminders"),
        f"/withdraw {subject} — " + t._("withdraw (stops all messages, keeps all data)"),
        f"/rebind {subject} — " + t._("new link for a patient's new phone"),
    ]
    if settings.helpers.enabled:
        lines.append(f"/helper {subject} — " + t._("invitation for a patient's family helper"))
    if settings.visits.enabled:
        lines.append(f"/visit {subject} … — " + t._("study visits: register, move, cancel, attended"))
    return "\n".join(lines + [
        "/alerts — " + t._("open alerts"),
        "/ack CODE — " + t._("acknowledge an alert with the code from its mail"),
        "/digest — " + t._("today's digest now"),
        "/report — " + t._("adherence chart"),
        "/export — " + t._("all data as CSV files (zip)"),
        "/cancel — " + t._("stop the current question"),
    ])


def not_for_you(t: Translator) -> str:
    return t._("Sorry, this is for the study team only.")


def not_at_your_site(t: Translator, subject: str | None) -> str:
    return t._("No patient {subject} at your site.", subject=subject or "—")


def bad_subject(t: Translator) -> str:
    return t._("Please give a subject id like SH-017.")


def bad_date(t: Translator) -> str:
    return t._("Please give the date as YYYY-MM-DD, e.g. 2026-12-01.")


def expired_step(t: Translator) -> str:
    return t._("This step has expired. Please send the command again.")
