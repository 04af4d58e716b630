"""Coordinator screens for courses: registering a cycle (with its 14 dates), correcting one, refusals."""

from __future__ import annotations

from datetime import date

from bot.channels.port import Action, Actions
from bot.render.actions import buttons
from bot.i18n import Translator
from bot.render import callbacks as cb
from bot.services.courses import CoursePreview, ReanchorPreview


def course_preview(t: Translator, preview: CoursePreview) -> tuple[str, Actions]:
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
    keyboard = buttons([[
        Action(t._("✅ Register"), data=cb.course_register(preview.subject_id, iso, cb.COURSE_REGISTER)),
        Action(t._("Cancel"), data=cb.course_register(preview.subject_id, iso, cb.COURSE_DROP))]])
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
