"""What a staff member reads in an alert mail: the subject id, the level and the symptom labels,
nothing else about the patient (no free text, notes, names or reasons: mail leaves our hands),
and the code that acknowledges the alert."""

from __future__ import annotations

from bot.config import Settings
from bot.db.models import Alert
from bot.i18n import Translator
from bot.domain.alerts import is_notice


def level_label(t: Translator, level: str) -> str:
    return {"emergency": t._("EMERGENCY"), "same_day": t._("Same day"), "info": t._("For information")}.get(
        level, level)


def alert_mail(t: Translator, settings: Settings, alert: Alert, *, code: str, escalated: bool = False,
               repeat: int = 0) -> tuple[str, str]:
    """(subject line, body) of one mailed copy of an alert."""
    subject_id = (alert.details or {}).get("subject_id") or "—"
    level = level_label(t, alert.level)
    subject = t._("[{trial}] {level} alert: {subject}", trial=settings.trial.name, level=level, subject=subject_id)
    lines = []
    if escalated:
        lines.append(t._("ESCALATED: not acknowledged in time"))
    if repeat > 0:
        lines.append(t._("Still not acknowledged (reminder {number}, first raised at {time})",
                         number=repeat + 1, time=t.time(alert.created_at)))
    lines += [t._("Alert level: {level}", level=level), t._("Subject: {subject}", subject=subject_id),
              t._("Raised: {when}", when=t.datetime(alert.created_at))]
    symptoms = settings.triage.by_code()
    labels = [symptoms[c].label(t.locale) for c in (alert.details or {}).get("symptoms", []) if c in symptoms]
    if labels:
        lines += ["", t._("Symptoms reported:")] + ["• " + label for label in labels]
    lines += ["", t._("Open Telegram for the details, or follow your site's procedure for this level.")]
    if is_notice(alert.kind):  # nothing to acknowledge
        return subject, "\n".join(lines + ["", t._("For your information; no reply needed.")])
    lines += ["", t._("To acknowledge, send this to the bot in Telegram:"), f"/ack {code}",
              t._("Without Telegram, give the code to the bot's operator (adherence-bot ack {code}).", code=code)]
    return subject, "\n".join(lines)
