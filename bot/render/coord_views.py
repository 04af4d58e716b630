"""Coordinator views: invitations, course previews, the patient list and card, the digest and
the report caption. Plain text (no markup to break), short lines for a phone."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from telegram import InlineKeyboardButton as Button
from telegram import InlineKeyboardMarkup as Keyboard

from bot.config import Settings, Site
from bot.domain.adherence import Adherence, marks
from bot.i18n import Translator
from bot.render import callbacks as cb
from bot.render import accountability as render_accountability
from bot.render import family as render_family
from bot.render import visits as render_visits
from bot.render.coordinator import alert_summary, alert_title, missed_reason_label, printable
from bot.render.patient import state_label
from bot.reports.chart import ChartRow
from bot.services.courses import CoursePreview, ReanchorPreview
from bot.services.invitations import OpenInvitation
from bot.services.patients import PatientDetail, PatientRow
from bot.services.digest import Digest

MESSAGE_LIMIT = 3800  # below Telegram's 4096, leaving room for a header


def chunks(lines: list[str], limit: int = MESSAGE_LIMIT) -> list[str]:
    """Join lines into as few messages as fit."""
    out, current = [], ""
    for line in lines:
        if current and len(current) + 1 + len(line) > limit:
            out.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    return out + ([current] if current else [])


def rate(counts: Adherence) -> str:
    return counts.percent_text()


def ratio(t: Translator, counts: Adherence) -> str:
    text = t._("{rate} ({taken} of {expected} doses)", rate=rate(counts), taken=counts.taken,
               expected=counts.expected)
    if counts.held or counts.before_registration:  # not the patient's to answer: shown apart, never counted
        text += "; " + t._("held {held}, before registration {before}", held=counts.held,
                           before=counts.before_registration)
    return text


# --- invitations ---------------------------------------------------------------------------

def invitation_caption(t: Translator, *, link: str, subject_id: str | None, site: Site, expires_at,
                       purpose: str = "enrol") -> str:
    head = t._("New phone link for {subject}", subject=subject_id) if purpose == "rebind" else \
        t._("Invitation for {subject}", subject=subject_id or t._("a new patient"))
    return "\n".join([
        head,
        t._("Site: {site}", site=site.name(t.locale)),
        t._("Let the patient scan this QR code with their phone camera, or send them the link:"),
        link,
        t._("Single use. Expires {when}.", when=t.datetime(expires_at)),
    ])


def invitation_keyboard(t: Translator, invitation_id: int) -> Keyboard:
    return Keyboard([[Button(t._("Revoke"), callback_data=cb.revoke_invitation(invitation_id))]])


def invitations_list(t: Translator, items: list[OpenInvitation]) -> tuple[str, Keyboard | None]:
    if not items:
        return t._("No open invitations."), None
    lines = [t._("Open invitations ({count}):", count=len(items))]
    buttons = []
    for item in items:
        who = item.subject_id or t._("new patient")
        kind = {"rebind": " " + t._("(new phone)"), "helper": " " + t._("(family helper)")}.get(item.purpose, "")
        lines.append(t._("#{id} {who}{kind}: expires {when}", id=item.id, who=who, kind=kind,
                         when=t.datetime(item.expires_at)))
        buttons.append([Button(t._("Revoke #{id} {who}", id=item.id, who=who),
                               callback_data=cb.revoke_invitation(item.id))])
    return "\n".join(lines), Keyboard(buttons[:50])


def revoke_result(t: Translator, status: str) -> str:
    return {
        "revoked": t._("Invitation revoked. The link no longer works."),
        "used": t._("This invitation was already used."),
        "expired": t._("This invitation had already expired."),
        "revoked_already": t._("This invitation was already revoked."),
    }[status]


# --- courses -------------------------------------------------------------------------------

def course_preview(t: Translator, preview: CoursePreview) -> tuple[str, Keyboard]:
    span = preview.span
    lines = [t._("Register cycle {cycle} for {subject}?", cycle=preview.cycle, subject=preview.subject_id),
             t._("Chemotherapy ended: {date}", date=t.date(span.chemo_end)),
             t._("Study tablets on these {count} days:", count=len(preview.dates))]
    lines += [t._("Day {day}: {date}", day=i, date=t.date(d)) for i, d in enumerate(preview.dates, start=1)]
    if preview.starts_in_past:
        lines.append("⚠ " + t._("Day 1 is in the past: days already over are recorded as before registration "
                                "(not reminded, not counted); the patient gets the plan first, then one optional "
                                "question about them."))
    iso = span.chemo_end.isoformat()
    keyboard = Keyboard([[
        Button(t._("✅ Register"), callback_data=cb.course_register(preview.subject_id, iso, cb.COURSE_REGISTER)),
        Button(t._("Cancel"), callback_data=cb.course_register(preview.subject_id, iso, cb.COURSE_DROP))]])
    return "\n".join(lines), keyboard


def course_registered(t: Translator, *, subject_id: str, cycle: int, first_day: date, last_day: date,
                      already: bool = False) -> str:
    head = t._("Already registered.") if already else "✅ " + t._("Registered.")
    return "\n".join([head, t._("{subject}, cycle {cycle}: {first} – {last}", subject=subject_id, cycle=cycle,
                                first=t.date(first_day), last=t.date(last_day))])


def course_refusal(t: Translator, code: str) -> str:
    return {
        "withdrawn": t._("This patient has withdrawn; no course can be registered or changed."),
        "overlap": t._("These dates overlap another course of this patient. Nothing was changed."),
        "out_of_order": t._("A course must come after the patient's existing courses. Nothing was changed."),
        "invalid": t._("That is already this course's date. Nothing was changed."),
        "no_course": t._("This patient has no active course to change."),
        "past_days": t._("Some days of the corrected schedule are already over. Cancel this course with "
                         "/cancelcycle and register the right one with /cycle instead."),
        "reason_required": t._("A reason is needed."),
        "unknown_patient": t._("No such patient."),
        "wrong_site": t._("No such patient."),
    }.get(code, t._("Nothing was changed."))


def reanchor_preview(t: Translator, preview: ReanchorPreview) -> str:
    lines = [
        t._("Correct cycle {cycle} of {subject}:", cycle=preview.cycle, subject=preview.subject_id),
        t._("Now: {first} – {last} (chemotherapy ended {chemo})", first=t.date(preview.old.first_day),
            last=t.date(preview.old.last_day), chemo=t.date(preview.old.chemo_end)),
        t._("New: {first} – {last} (chemotherapy ended {chemo})", first=t.date(preview.new.first_day),
            last=t.date(preview.new.last_day), chemo=t.date(preview.new.chemo_end)),
    ]
    if preview.started:
        lines.append(t._("The course has started: days already reminded or answered stay as recorded; "
                         "only the remaining days move."))
    plan = preview.plan
    if plan is not None and preview.started:
        inside = [k for k in plan.kept if not k.out_of_window]
        if inside:
            lines.append(t._("Kept and counted: {dates}", dates=", ".join(t.date(k.local_date) for k in inside)))
        if plan.out_of_window:
            lines.append(t._("Kept but outside the new course (not counted): {dates}",
                             dates=", ".join(t.date(k.local_date) for k in plan.out_of_window)))
        if plan.voided:
            lines.append(t._("Reminded but unanswered, outside the new course (voided): {count}",
                             count=len(plan.voided)))
        lines.append(t._("Days moved: {moved}; days added: {added}", moved=len(plan.moved),
                         added=len(plan.created)))
        if preview.over:
            lines.append(t._("Already over, not asked (before registration): {dates}",
                             dates=", ".join(t.date(d) for d in preview.over)))
        lines.append(t._("Rule: docs/corrections.md"))
    lines.append(t._("Send the reason for this correction in one message, or /cancel."))
    return "\n".join(lines)


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


# --- patients ------------------------------------------------------------------------------

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


def patient_card(t: Translator, settings: Settings, detail: PatientDetail) -> tuple[str, Keyboard | None]:
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
    if p.status == "withdrawn":
        return "\n".join(lines)[:4000], None
    if p.status == "paused" and p.pause_reason:
        lines.insert(1, t._("Paused: {reason}", reason=p.pause_reason))
    toggle = (t._("▶ Resume"), cb.RESUME) if p.status == "paused" else (t._("⏸ Pause"), cb.PAUSE)
    keyboard = Keyboard([
        [Button(toggle[0], callback_data=cb.patient_action(toggle[1], p.subject_id)),
         Button(t._("📱 New phone link"), callback_data=cb.patient_action(cb.REBIND, p.subject_id))],
        [Button(t._("Withdraw…"), callback_data=cb.patient_action(cb.WITHDRAW, p.subject_id))],
    ])
    return "\n".join(lines)[:4000], keyboard


def level_label(t: Translator, level: str) -> str:
    return {"emergency": "🚨 " + t._("emergency"), "same_day": "⚠ " + t._("same day"),
            "log": t._("logged")}.get(level, level)


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


# --- digest and reports --------------------------------------------------------------------

def _names(items: list[tuple[str, bool]], t: Translator) -> str:
    return ", ".join(s + (" " + t._("(late)") if late else "") for s, late in items) or t._("none")


def digest_text(t: Translator, settings: Settings, digest: Digest) -> list[str]:
    site = settings.site(digest.site_id)
    total = settings.trial.course_days
    labels = settings.triage.by_code()
    yesterday = date.fromordinal(digest.today.toordinal() - 1)
    lines = ["☀ " + t._("Morning digest: {site}, {date}", site=site.name(t.locale), date=t.date(digest.today)), ""]
    lines.append(t._("On course today ({count}):", count=len(digest.on_course)))
    lines += [f"• {o.subject_id} " + t._("cycle {cycle}, day {day} of {total}", cycle=o.cycle, day=o.day,
                                         total=total) + (" ⏸" if o.paused else "") + (" H" if o.held else "") for o in digest.on_course] \
        or ["  " + t._("none")]
    lines += ["", t._("Yesterday ({date}):", date=t.date(yesterday)),
              "✓ " + t._("taken: {names}", names=_names(digest.yesterday.get("taken", []), t)),
              "✗ " + t._("not taken: {names}", names=_names(digest.yesterday.get("missed", []), t)),
              "? " + t._("no answer: {names}", names=_names(digest.yesterday.get("not_reported", []), t))]
    for subject, day, reason in digest.reasons:
        lines.append("  " + t._("{subject}, {date}: {reason}", subject=subject, date=t.date(day),
                                reason=missed_reason_label(t, reason)))
    if digest.yesterday.get("held"):
        lines.append("H " + t._("on hold by the study team: {names}", names=_names(digest.yesterday["held"], t)))
    if digest.yesterday.get("scheduled"):
        lines.append("· " + t._("still open: {names}", names=_names(digest.yesterday["scheduled"], t)))
    lines += ["", t._("Symptom reports since {when} ({count}):", when=t.datetime(digest.since),
                      count=len(digest.reports))]
    for r in digest.reports:
        names = ", ".join(labels[c].label(t.locale) if c in labels else c for c in r.symptoms)
        lines.append(f"• {r.subject_id} {t.datetime(r.reported_at)} {level_label(t, r.level)}: {names}")
        if r.note:
            lines.append("  ✎ " + printable(r.note[:200]))
    if not digest.reports:
        lines.append("  " + t._("none"))
    lines += ["", t._("Open alerts ({count}):", count=len(digest.alerts))]
    lines += [f"• {(a.details or {}).get('subject_id') or '—'}: {alert_summary(t, a)} ({t.datetime(a.created_at)})"
              for a in digest.alerts] or ["  " + t._("none")]
    if digest.messages:
        lines += ["", t._("Messages from patients since {when} ({count}):", when=t.datetime(digest.since),
                          count=len(digest.messages))]
        lines += [f"• {m.subject_id} {t.datetime(m.at)}: " + (printable(m.text[:120]) if m.text else "📎 " + m.kind)
                  for m in digest.messages]
    lines += render_accountability.digest_lines(t, digest.tablet_counts)
    lines += render_visits.digest_lines(t, settings, digest.visits_upcoming, digest.visits_missed, site.tz, digest.now)
    lines += ["", t._("Adherence so far:")]
    lines += [f"• {subject}: {ratio(t, counts)}" for subject, counts in digest.adherence] or ["  " + t._("none")]
    if digest.total is not None and digest.total.expected:
        lines.append(t._("Site: {ratio}", ratio=ratio(t, digest.total)))
    return chunks(lines)


def report_caption(t: Translator, site: Site, *, totals: Adherence, current: Adherence, patients: int,
                   on_course: int, page: int, pages: int) -> str:
    lines = [t._("Adherence: {site}", site=site.name(t.locale))]
    if pages > 1:
        lines.append(t._("Page {page} of {pages}", page=page, pages=pages))
    if page == 1:
        lines += [
            t._("Patients: {count}, on course today: {on_course}", count=patients, on_course=on_course),
            t._("All courses: {ratio}", ratio=ratio(t, totals)),
            t._("Missed: {missed}, no answer: {not_reported}", missed=totals.missed,
                not_reported=totals.not_reported),
            t._("Current courses: {ratio}", ratio=ratio(t, current)),
            t._("✓ taken  ✗ not taken  ? no answer  · to come"),
        ]
    return "\n".join(lines)[:1000]


def export_caption(t: Translator, *, site_name: str, counts: dict[str, int]) -> str:
    return "\n".join([t._("Data export: {site}", site=site_name),
                      t._("{patients} patients, {days} dose days, {reports} symptom reports, {alerts} alerts, "
                          "{audit} audit rows.", patients=counts["patients"], days=counts["dose_days"],
                          reports=counts["symptom_reports"], alerts=counts["alerts"], audit=counts["audit_log"]),
                      t._("In the zip: patients.csv (one row per patient), courses.csv (one per course), "
                          "dose_days.csv (each course day and its outcome), dose_events.csv (each answer or "
                          "change), symptom_reports.csv, alerts.csv, patient_messages.csv (what patients sent and the "
                          "team's answers), invitations.csv and audit_log.csv (who "
                          "changed what, and when). The first row of each file names its columns; times are "
                          "given in UTC and in local time."),
                      companion_files(t)])


def companion_files(t: Translator) -> str:
    """The files of the optional checks (issue 14): named too, also when a check is off (empty)."""
    from bot.services.exports import COMPANION_TABLES
    return t._("Also in the zip: {files} (the optional checks; empty when switched off), and codebook.csv "
               "(every code explained).", files=", ".join(f"{table}.csv" for table in COMPANION_TABLES))


def chart_rows(rows: list[PatientRow]) -> list[ChartRow]:
    """Patients with a course, not withdrawn, as chart rows (subject id and cycle: ASCII only)."""
    return [ChartRow(f"{r.subject_id} C{r.cycle}", r.states, r.day) for r in rows
            if r.status != "withdrawn" and r.cycle is not None]
