"""What coordinators read: alerts with an Acknowledge button."""

from __future__ import annotations

from telegram import InlineKeyboardButton as Button
from telegram import InlineKeyboardMarkup as Keyboard

from bot.config import Settings
from bot.db.models import Alert
from bot.i18n import Translator
from bot.render import callbacks as cb


def alert_title(t: Translator, kind: str) -> str:
    return {
        "emergency_symptom": "🚨 " + t._("EMERGENCY symptom report"),
        "same_day_symptom": "⚠ " + t._("Symptom report: call the patient today"),
        "consecutive_missed": "⚠ " + t._("Consecutive doses missed or not reported"),
        "unreachable": "⚠ " + t._("Patient unreachable (blocked the bot)"),
        "patient_course_start": "ℹ " + t._("Patient reports chemotherapy finished: confirm the course"),
        "patient_paused": "ℹ " + t._("Patient paused reminders"),
        "new_enrolment": "ℹ " + t._("New enrolment"),
    }[kind]


def alert_message(t: Translator, settings: Settings, alert: Alert, *, escalated: bool = False,
                  acknowledged_by: str | None = None) -> tuple[str, Keyboard | None]:
    details = alert.details or {}
    lines = [alert_title(t, alert.kind), t._("Subject: {subject}", subject=details.get("subject_id") or "—"),
             t._("Raised: {when}", when=t.datetime(alert.created_at))]
    symptoms = settings.triage.by_code()
    if details.get("symptoms"):
        lines += ["• " + symptoms[c].label(t.locale) for c in details["symptoms"] if c in symptoms]
    if details.get("days"):
        lines.append(t._("Days in a row: {days}", days=details["days"]))
    if details.get("chemo_end"):
        lines.append(t._("Chemotherapy end reported: {date}", date=details["chemo_end"]))
    if escalated:
        lines.insert(0, t._("ESCALATED: not acknowledged in time"))
    if alert.acknowledged_at is not None:
        lines.append("✅ " + t._("Acknowledged by {who} at {when}", who=acknowledged_by or alert.acknowledged_by,
                                 when=t.datetime(alert.acknowledged_at)))
        return "\n".join(lines), None
    return "\n".join(lines), Keyboard([[Button(t._("Acknowledge"), callback_data=cb.ack(alert.id))]])
