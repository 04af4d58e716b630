"""Courses from the coordinator's phone: /cycle (preview, then Register), /correct and
/cancelcycle (each asks for a reason), and Confirm / Correct under a patient-reported start."""

from __future__ import annotations

from datetime import date

from telegram import Update
from telegram.error import Forbidden
from telegram.ext import BaseHandler, CallbackQueryHandler

from bot.domain.alerts import AlertKind
from bot.channels.port import Account
from bot.channels.telegram.keyboards import as_markup
from bot.channels.telegram.handlers.common import runtime
from bot.channels.telegram.handlers.context import BotContext
from bot.channels.telegram.handlers.coord_common import (REFUSED, edit_quietly, example_subject, guarded, parse_date, require_coordinator,
                                       set_pending, tell)
from bot.channels.telegram.handlers.coordinator import acknowledge, edit_copies
from bot.render import callbacks as cb
from bot.render import coord_courses as course_views
from bot.render import coord_patients as patient_views
from bot.render import coordinator as render
from bot.services import courses
from bot.services.staff import staff_label


def _cycle_arg(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) <= 3 else None


async def cycle(update: Update, context: BotContext) -> None:
    if not (found := await require_coordinator(update, context, "cycle")):
        return
    actor, t = found
    args = context.args
    chemo_end = parse_date(args[1]) if len(args) > 1 else None
    example = example_subject(runtime(context), actor)
    if len(args) > 1 and chemo_end is None:  # name the problem: the date
        await update.effective_message.reply_text(
            t._("“{value}” is not a date. Write it as year-month-day, for example: /cycle {subject} 2026-12-01",
                value=args[1][:20], subject=args[0][:20]))
        return
    if not args or chemo_end is None:
        await update.effective_message.reply_text(t._("Usage: /cycle {subject} 2026-12-01 (the date chemotherapy "
                                                      "ended in this cycle)", subject=example))
        return
    preview = await guarded(update, t, args[0], lambda: courses.preview_new(
        runtime(context), actor, subject_id=args[0], chemo_end=chemo_end, update_id=update.update_id))
    if preview is not REFUSED:
        text, keyboard = course_views.course_preview(t, preview)
        await update.effective_message.reply_text(text, reply_markup=as_markup(keyboard))


async def on_register(update: Update, context: BotContext) -> None:
    action, subject, compact_date = context.match.groups()
    if not (found := await require_coordinator(update, context, "cycle")):
        return
    actor, t = found
    query = update.callback_query
    chemo_end = parse_date(compact_date)
    if action == cb.COURSE_DROP or chemo_end is None:
        await query.answer()
        await edit_quietly(query, t._("Cancelled. Nothing was registered."))
        return
    done = await guarded(update, t, subject, lambda: courses.register(
        runtime(context), actor, subject_id=subject, chemo_end=chemo_end, update_id=update.update_id))
    if done is REFUSED:
        return
    status, course = done
    await query.answer()
    await edit_quietly(query, course_views.course_registered(t, subject_id=subject, cycle=course.cycle,
                                                      first_day=course.first_day, last_day=course.last_day,
                                                      already=status == "already"))


async def _ask_correction(update: Update, context: BotContext, actor, t, subject: str,
                          new_end: date, cycle_no: int | None) -> bool:
    preview = await guarded(update, t, subject, lambda: courses.preview_reanchor(
        runtime(context), actor, subject_id=subject, new_chemo_end=new_end, cycle=cycle_no,
        update_id=update.update_id))
    if preview is REFUSED:
        return False
    await set_pending(update, context, "reanchor_reason", subject=preview.subject_id, cycle=preview.cycle,
                      date=new_end.isoformat())
    await context.bot.send_message(update.effective_user.id, course_views.reanchor_preview(t, preview))
    return True


async def correct(update: Update, context: BotContext) -> None:
    if not (found := await require_coordinator(update, context, "correct_course")):
        return
    actor, t = found
    args = context.args
    new_end = parse_date(args[1]) if len(args) > 1 else None
    if not args or new_end is None:
        await update.effective_message.reply_text(t._("Usage: /correct SH-017 2026-12-03 [cycle] (the corrected "
                                                      "chemotherapy end date)"))
        return
    await _ask_correction(update, context, actor, t, args[0], new_end, _cycle_arg(args[2] if len(args) > 2 else None))


async def cancel_cycle(update: Update, context: BotContext) -> None:
    if not (found := await require_coordinator(update, context, "cancel_course")):
        return
    actor, t = found
    args = context.args
    if not args:
        await update.effective_message.reply_text(t._("Usage: /cancelcycle SH-017 [cycle]"))
        return
    course = await guarded(update, t, args[0], lambda: courses.target(
        runtime(context), actor, subject_id=args[0], cycle=_cycle_arg(args[1] if len(args) > 1 else None),
        what="cancel_course", update_id=update.update_id))
    if course is REFUSED:
        return
    subject = args[0].upper()
    await set_pending(update, context, "cancel_reason", subject=subject, cycle=course.cycle)
    await update.effective_message.reply_text(patient_views.ask_reason(t, "cancel_course", subject, course.cycle))


async def on_patient_course(update: Update, context: BotContext) -> None:
    """Confirm or Correct under a patient_course_start alert. Either one acknowledges the alert."""
    confirm, alert_id = context.match[1] == "pc", int(context.match[2])
    result = await acknowledge(update, context, alert_id)
    if result.status == "refused":
        return
    found = await require_coordinator(update, context, "confirm_course")
    if not found or result.alert.kind != AlertKind.PATIENT_COURSE_START:
        return
    actor, t = found
    details = result.alert.details or {}
    if confirm:
        done = await guarded(update, t, details.get("subject_id"), lambda: courses.confirm(
            runtime(context), actor, course_id=int(details.get("course_id") or 0), update_id=update.update_id))
        if done is not REFUSED:
            await update.callback_query.answer(t._("Course confirmed."))
            status, course = done
            rt = runtime(context)
            who, when = staff_label(rt.settings, Account.telegram(update.effective_user.id)) or "—", rt.now()
            if status == "confirmed":  # the alert says what was confirmed, by whom and when
                await edit_copies(context, result, outcome=lambda tr: "✅ " + tr._(
                    "Course confirmed by {who} at {when}: cycle {cycle}, {first} – {last}.", who=who,
                    when=tr.datetime(when), cycle=course.cycle, first=tr.date(course.first_day),
                    last=tr.date(course.last_day)))
        return
    await set_pending(update, context, "correct_date", subject=details.get("subject_id"),
                      cycle=details.get("cycle"))
    try:
        await context.bot.send_message(update.effective_user.id, t._(
            "Send the correct chemotherapy end date for {subject} (cycle {cycle}) as YYYY-MM-DD, or /cancel.",
            subject=details.get("subject_id"), cycle=details.get("cycle")))
    except Forbidden:
        await tell(update, t._("Open a private chat with me first, then send /correct {subject} YYYY-MM-DD.",
                               subject=details.get("subject_id")))
        return
    await update.callback_query.answer()


async def answer_pending(update: Update, context: BotContext, pending: dict, text: str) -> None:
    """The coordinator's typed answer to an open question about a course."""
    if not (found := await require_coordinator(update, context, pending["step"])):
        return
    actor, t = found
    rt = runtime(context)
    subject = pending["subject"]
    if pending["step"] == "correct_date":
        new_end = parse_date(text)
        if new_end is None:
            await set_pending(update, context, "correct_date", subject=subject, cycle=pending.get("cycle"))
            await update.effective_message.reply_text(render.bad_date(t))
            return
        await _ask_correction(update, context, actor, t, subject, new_end, pending.get("cycle"))
    elif pending["step"] == "reanchor_reason":
        course = await guarded(update, t, subject, lambda: courses.reanchor(
            rt, actor, subject_id=subject, cycle=pending["cycle"], new_chemo_end=date.fromisoformat(pending["date"]),
            reason=text, update_id=update.update_id))
        if course is not REFUSED:
            await update.effective_message.reply_text("✅ " + t._(
                "Corrected: {subject}, cycle {cycle}: {first} – {last}. The patient gets the new plan.",
                subject=subject, cycle=course.cycle, first=t.date(course.first_day), last=t.date(course.last_day)))
    elif pending["step"] == "cancel_reason":
        course = await guarded(update, t, subject, lambda: courses.cancel(
            rt, actor, subject_id=subject, cycle=pending["cycle"], reason=text, update_id=update.update_id))
        if course is not REFUSED:
            await update.effective_message.reply_text("✅ " + t._(
                "Cancelled: {subject}, cycle {cycle}. No more reminders for it.", subject=subject, cycle=course.cycle))


def handlers() -> list[BaseHandler]:
    return [CallbackQueryHandler(on_patient_course, pattern=cb.pattern("(pc|pk)", cb.ID)),
            CallbackQueryHandler(on_register, pattern=cb.pattern(
                "cy", cb.one_of((cb.COURSE_REGISTER, cb.COURSE_DROP)), cb.ARG, "([0-9]{8})"))]
