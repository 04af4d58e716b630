"""Visits as the patient and the team read them (issue 14, part 2). Nothing differs by arm."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot.channels.port import Action, Actions
from bot.render.actions import buttons
from bot.config import Settings, Site
from bot.db.models import Visit
from bot.i18n import Translator

Rendered = tuple[str, Actions | None]
COMING, CHANGE = "c", "x"  # in callback payloads: vs:<visit id>:<c|x>


def payload(visit_id: int, choice: str) -> str:
    return f"vs:{visit_id}:{choice}"


def kind_label(t: Translator, settings: Settings, code: str) -> str:
    kind = settings.visits.by_code().get(code)
    return kind.label(t.locale) if kind else code


def _when(t: Translator, at: datetime) -> tuple[str, str]:
    return t.date(at.astimezone(t.tz).date()), t.time(at)


def reminder(t: Translator, settings: Settings, site: Site, visit: Visit, which: str) -> Rendered:
    day, clock = _when(t, visit.at)
    what = kind_label(t, settings, visit.kind)
    head = (t._("Reminder: {what} tomorrow, {date} at {time}.", what=what, date=day, time=clock)
            if which == "day_before" else t._("Reminder: {what} today at {time}.", what=what, time=clock))
    text = "\n".join(["📅 " + head, t._("Where: {site}", site=site.name(t.locale)),
                      t._("Study site phone: {phone}", phone=site.phone)])
    return text, buttons([[Action(t._("I'll be there"), data=payload(visit.id, COMING))],
                           [Action(t._("I need to change it"), data=payload(visit.id, CHANGE))]])


def answered(t: Translator, settings: Settings, site: Site, visit: Visit) -> Rendered:
    day, clock = _when(t, visit.at)
    what = kind_label(t, settings, visit.kind)
    head = "📅 " + t._("{what}: {date} at {time}", what=what, date=day, time=clock)
    if visit.patient_answer == "change":
        return "\n".join([head, t._("Thank you. Your study team will contact you to find a new time."),
                          t._("Study site phone: {phone}", phone=site.phone)]), None
    return "\n".join([head, t._("Thank you. See you then.")]), None


def visit_line(t: Translator, settings: Settings, visit: Visit, tz: ZoneInfo, now: datetime) -> str:
    from bot.services.visits import unconfirmed
    day, clock = _when(t, visit.at)
    line = f"#{visit.id} {kind_label(t, settings, visit.kind)} {day} {clock}"
    if visit.patient_answer == "coming":
        line += " — " + t._("patient will come")
    elif visit.patient_answer == "change":
        line += " — " + t._("patient asks to change it")
    if unconfirmed(visit, tz, now):
        line += " — " + t._("not confirmed as attended")
    return line


def card_lines(t: Translator, settings: Settings, visits: list[Visit], tz: ZoneInfo, now: datetime) -> list[str]:
    if not visits:
        return []
    return ["", t._("Visits:")] + ["• " + visit_line(t, settings, v, tz, now) for v in visits]


def digest_lines(t: Translator, settings: Settings, upcoming, missed, tz: ZoneInfo, now: datetime) -> list[str]:
    lines = []
    if upcoming:
        lines += ["", t._("Visits today and tomorrow ({count}):", count=len(upcoming))]
        lines += [f"• {subject} " + visit_line(t, settings, v, tz, now) for subject, v in upcoming]
    if missed:
        lines += ["", t._("Visits not confirmed as attended ({count}): use /visit attended ID",
                          count=len(missed))]
        lines += [f"• {subject} " + visit_line(t, settings, v, tz, now) for subject, v in missed]
    return lines


def alert_lines(t: Translator, settings: Settings, details: dict) -> list[str]:
    if not details.get("visit_at"):
        return []
    at = datetime.fromisoformat(details["visit_at"])
    day, clock = _when(t, at)
    return [t._("Patient asks to change: {what} on {date} at {time} (#{visit})",
                what=kind_label(t, settings, details.get("visit_kind", "")), date=day, time=clock,
                visit=details.get("visit_id"))]


def usage(t: Translator, settings: Settings) -> str:
    return t._("Use /visit SUBJECT YYYY-MM-DD HH:MM [kind], /visit move ID YYYY-MM-DD HH:MM REASON, "
               "/visit cancel ID REASON or /visit attended ID. Kinds: {kinds}",
               kinds=", ".join(k.code for k in settings.visits.kinds))


def registered(t: Translator, settings: Settings, visit: Visit, subject: str) -> str:
    day, clock = _when(t, visit.at)
    return "✅ " + t._("{subject}: {what} on {date} at {time} (#{visit}). The patient is reminded the day before "
                      "and {hours} hours before.", subject=subject, what=kind_label(t, settings, visit.kind),
                      date=day, time=clock, visit=visit.id, hours=settings.visits.hours_before)


def changed(t: Translator, settings: Settings, visit: Visit, subject: str) -> str:
    day, clock = _when(t, visit.at)
    status = {"scheduled": t._("moved"), "cancelled": t._("cancelled"), "attended": t._("attended")}[visit.status]
    return "✅ " + t._("{subject}: visit #{visit} ({what}, {date} {time}) {status}.", subject=subject,
                      visit=visit.id, what=kind_label(t, settings, visit.kind), date=day, time=clock, status=status)


def refusal(t: Translator, code: str) -> str:
    return {
        "off": t._("Visit reminders are switched off for this trial."),
        "bad_kind": t._("Unknown visit kind."),
        "past": t._("That time has already passed."),
        "reason": t._("A reason is needed."),
        "withdrawn": t._("This patient has withdrawn. Nothing was changed."),
        "no_visit": t._("No such visit."),
        "cancelled": t._("That visit was cancelled. Nothing was changed."),
        "attended": t._("That visit is already confirmed as attended. Nothing was changed."),
        "future": t._("That visit has not happened yet."),
    }.get(code, t._("Nothing was changed."))
