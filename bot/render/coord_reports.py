"""Coordinator screens for reports: the morning digest, the adherence chart's caption and rows,
the export's caption."""

from __future__ import annotations

from datetime import date

from bot.config import Settings, Site
from bot.domain.adherence import Adherence
from bot.i18n import Translator
from bot.render import accountability as render_accountability
from bot.render import visits as render_visits
from bot.render.coord_text import chunks, level_label, ratio
from bot.render.coordinator import alert_summary, missed_reason_label, printable
from bot.reports.chart import ChartRow
from bot.services.patients import PatientRow
from bot.services.digest import Digest


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
