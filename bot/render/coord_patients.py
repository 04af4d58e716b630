"""Coordinator screens for patients: the list, the card (with notes, reasons and messages),
pause / resume / withdraw and the reason they ask for, refusals."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from bot.domain.status import PatientStatus
from bot.channels.port import Action, Actions
from bot.render.actions import buttons
from bot.config import Settings
from bot.domain.adherence import marks
from bot.i18n import Translator
from bot.render import accountability as render_accountability
from bot.render import callbacks as cb
from bot.render import family as render_family
from bot.render import visits as render_visits
from bot.render.coord_text import chunks, level_label, rate, ratio
from bot.render.coordinator import alert_summary, missed_reason_label, printable
from bot.render.patient import state_label
from bot.services.patients import PatientDetail, PatientRow


def ask_reason(t: Translator, what: str, subject_id: str, cycle: int | None = None) -> str:
    if what == "pause":
        return t._("Hold {subject}'s study medication? Reminders stop, days are recorded as held (not missed), "
                   "and only the study team can lift it. Send the reason in one message "
                   "(e.g. physician: hold study drug), or /cancel.", subject=subject_id)
    if what == "cancel_course":
        return t._("Cancel cycle {cycle} of {subject}? Days without an answer are voided and the patient is told; "
                   "days already recorded stay. Send the reason in one message, or /cancel.", cycle=cycle,
                   subject=subject_id)
    return t._("Withdraw {subject}? All messages to the patient stop; all data is kept. "
               "Send the reason in one message, or /cancel.", subject=subject_id)


def status_text(t: Translator, row: PatientRow, course_days: int) -> str:
    if row.status == "on_course":
        return t._("on course, day {day} of {total}", day=row.day, total=course_days)
    return {
        "enrolled": t._("enrolled, no course yet"),
        "between": t._("between courses"),
        "paused": t._("paused by the patient"),
        "held": t._("on hold by the study team"),
        "unreachable": t._("unreachable"),
        "withdrawn": t._("withdrawn"),
    }[row.status]


def patient_line(t: Translator, row: PatientRow, course_days: int) -> str:
    line = f"{row.subject_id} · {status_text(t, row, course_days)}"
    if row.open_alerts:
        line += f" · 🔔{row.open_alerts}"
    if row.cycle is not None:
        line += f"\n    C{row.cycle} {marks(row.states)} {rate(row.so_far)}"
    return line


def patients_list(t: Translator, settings: Settings, rows: list[PatientRow]) -> list[str]:
    if not rows:
        return [t._("No patients yet. Invite one with /invite.")]
    lines = []
    for site in settings.sites:
        site_rows = [r for r in rows if r.site_id == site.id]
        if not site_rows:
            continue
        lines.append(t._("{site}: {count} patients", site=site.name(t.locale), count=len(site_rows)))
        lines += [patient_line(t, r, settings.trial.course_days) for r in site_rows]
    lines.append(t._("✓ taken  ✗ not taken  ? no answer  · to come"))
    return chunks(lines)


def patient_card(t: Translator, settings: Settings, detail: PatientDetail) -> tuple[str, Actions | None]:
    p, row = detail.patient, detail.row
    lines = [f"{p.subject_id} · {status_text(t, row, settings.trial.course_days)}",
             t._("Site: {site}", site=settings.site(p.site_id).name(t.locale)),
             t._("Language: {language}; reminder at {time}", language="中文" if p.locale == "zh_Hans" else "English",
                 time=p.reminder_time)]
    if p.enrolled_at:
        lines.append(t._("Enrolled: {when}", when=t.datetime(p.enrolled_at)))
    lines.append(t._("Adherence so far: {ratio}", ratio=ratio(t, row.so_far)))
    for view in detail.courses:
        c = view.course
        flag = "" if c.confirmed else " " + t._("(reported by patient, not confirmed)")
        lines += ["", t._("Cycle {cycle}: {first} – {last}", cycle=c.cycle, first=t.date(c.first_day),
                          last=t.date(c.last_day)) + flag,
                  f"{marks([d.state for d in view.doses])} {rate(view.counts)}"]
        for dose in view.doses:
            if dose.state in ("missed", "not_reported", "held", "before_registration") or dose.late:
                extra = " " + t._("(late)") if dose.late else ""
                why = " — " + missed_reason_label(t, dose.missed_reason) if dose.missed_reason else ""
                lines.append(t._("Day {day} ({date}): {state}", day=dose.day, date=t.date(dose.local_date),
                                 state=state_label(t, dose.state)) + extra + why)
    for dose in detail.out_of_window:
        lines.append(t._("Kept outside the corrected course: cycle {cycle}, {date}: {state}", cycle=dose.cycle,
                         date=t.date(dose.local_date), state=state_label(t, dose.state)))
    for c in detail.cancelled:
        lines.append(t._("Cycle {cycle} cancelled ({first} – {last})", cycle=c.cycle, first=t.date(c.first_day),
                         last=t.date(c.last_day)))
    lines += render_accountability.card_lines(t, detail.tablets)
    lines += render_visits.card_lines(t, settings, detail.visits, ZoneInfo(p.timezone), detail.now)
    if settings.helpers.enabled:
        lines += render_family.card_lines(t, p, detail.helpers)
    lines.append("")
    if detail.reports:
        lines.append(t._("Symptom reports (latest {count}):", count=len(detail.reports)))
        labels = settings.triage.by_code()
        for report in detail.reports:
            names = ", ".join(labels[c].label(t.locale) if c in labels else c for c in report.symptoms)
            by = " (" + t._("by helper {helper}", helper=report.helper_id) + ")" if report.helper_id else ""
            lines.append(f"• {t.datetime(report.reported_at)} {level_label(t, report.level)}: {names}{by}")
            if report.note:
                lines.append("  ✎ " + printable(report.note[:300]))
    else:
        lines.append(t._("No symptom reports."))
    if detail.messages:
        lines.append(t._("Messages (latest {count}):", count=len(detail.messages)))
        for message in detail.messages:
            arrow = "←" if message.direction == "from_patient" else "→ " + message.author
            body = printable((message.text or "")[:300]) or "📎 " + message.kind
            lines.append(f"• {t.datetime(message.at)} {arrow}: {body}")
    if detail.alerts:
        lines.append(t._("Open alerts ({count}):", count=len(detail.alerts)))
        lines += [f"• {alert_summary(t, a)} ({t.datetime(a.created_at)})" for a in detail.alerts]
    if p.status == PatientStatus.WITHDRAWN:
        return "\n".join(lines)[:4000], None
    if p.status == PatientStatus.PAUSED and p.pause_reason:
        lines.insert(1, t._("Paused: {reason}", reason=p.pause_reason))
    toggle = (t._("▶ Resume"), cb.RESUME) if p.status == PatientStatus.PAUSED else (t._("⏸ Pause"), cb.PAUSE)
    keyboard = buttons([
        [Action(toggle[0], data=cb.patient_action(toggle[1], p.subject_id)),
         Action(t._("📱 New phone link"), data=cb.patient_action(cb.REBIND, p.subject_id))],
        [Action(t._("Withdraw…"), data=cb.patient_action(cb.WITHDRAW, p.subject_id))],
    ])
    return "\n".join(lines)[:4000], keyboard


def patient_refusal(t: Translator, code: str) -> str:
    return {
        "withdrawn": t._("This patient has withdrawn. Nothing was changed."),
        "reason_required": t._("A reason is needed."),
        "unchanged": t._("Nothing to change: the patient is already in that state."),
        "bad_state": t._("Use /dose SUBJECT YYYY-MM-DD taken|missed|not_reported REASON."),
        "no_day": t._("This patient has no dose day on that date."),
        "day_open": t._("That day is still open: the patient can still answer it."),
    }[code]


def paused_text(t: Translator, subject_id: str, paused: bool) -> str:
    return t._("{subject}: reminders paused.", subject=subject_id) if paused else \
        t._("{subject}: reminders resumed.", subject=subject_id)
