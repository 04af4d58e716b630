"""/patients, /patient <id>, /pause, /resume, /withdraw (asks for a reason), and the buttons
under a patient card. Every call re-checks the caller and the patient's site."""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler

from bot.domain.status import PatientStatus
from bot.channels.telegram.keyboards import as_markup
from bot.channels.telegram.handlers.common import runtime
from bot.channels.telegram.handlers.context import BotContext
from bot.channels.telegram.handlers.coord_common import REFUSED, edit_quietly, guarded, parse_date, require_coordinator, set_pending, tell
from bot.channels.telegram.handlers.coord_invites import rebind
from bot.render import callbacks as cb
from bot.render import coord_patients as patient_views
from bot.render import coordinator as render
from bot.render.patient import state_label
from bot.services import patients as patients_service


async def patients(update: Update, context: BotContext) -> None:
    if not (found := await require_coordinator(update, context, "patients")):
        return
    actor, t = found
    rt = runtime(context)
    site = context.args[0].upper() if context.args else None
    rows = await patients_service.overview(rt, actor, site_id=site)
    for text in patient_views.patients_list(t, rt.settings, rows):
        await update.effective_message.reply_text(text)


async def _card(update: Update, context: BotContext, actor, t, subject: str | None, *,
                edit: bool = False) -> None:
    rt = runtime(context)
    detail = await guarded(update, t, subject, lambda: patients_service.detail(
        rt, actor, subject_id=subject or "", update_id=update.update_id))
    if detail is REFUSED:
        return
    text, keyboard = patient_views.patient_card(t, rt.settings, detail)
    if edit:
        await edit_quietly(update.callback_query, text, keyboard)
    else:
        await update.effective_message.reply_text(text, reply_markup=as_markup(keyboard))


async def patient(update: Update, context: BotContext) -> None:
    if not (found := await require_coordinator(update, context, "patient")):
        return
    actor, t = found
    if not context.args:
        await update.effective_message.reply_text(render.bad_subject(t))
        return
    await _card(update, context, actor, t, context.args[0])


async def _set_paused(update: Update, context: BotContext, subject: str | None, paused: bool,
                      reason: str | None) -> bool:
    if not (found := await require_coordinator(update, context, "pause" if paused else "resume")):
        return False
    actor, t = found
    if not subject:
        await tell(update, render.bad_subject(t))
        return False
    if paused and not (reason or "").strip():  # a team hold says why: ask (after the site check), then answer_pause
        detail = await guarded(update, t, subject, lambda: patients_service.detail(
            runtime(context), actor, subject_id=subject, update_id=update.update_id, what="pause"))
        if detail is REFUSED:
            return False
        if detail.patient.status == PatientStatus.WITHDRAWN:
            await tell(update, patient_views.patient_refusal(t, "withdrawn"))
            return False
        await set_pending(update, context, "pause_reason", subject=detail.patient.subject_id)
        if update.callback_query is not None:
            await update.callback_query.answer()
        await context.bot.send_message(update.effective_user.id,
                                       patient_views.ask_reason(t, "pause", detail.patient.subject_id))
        return False
    done = await guarded(update, t, subject, lambda: patients_service.set_paused_by_staff(
        runtime(context), actor, subject_id=subject, paused=paused, reason=reason, update_id=update.update_id))
    if done is REFUSED:
        return False
    if update.callback_query is None:
        await update.effective_message.reply_text(patient_views.paused_text(t, done.subject_id, paused))
    else:
        await update.callback_query.answer(patient_views.paused_text(t, done.subject_id, paused))
        await _card(update, context, actor, t, subject, edit=True)
    return True


async def pause(update: Update, context: BotContext) -> None:
    args = context.args
    await _set_paused(update, context, args[0] if args else None, True, " ".join(args[1:]) or None)


async def resume(update: Update, context: BotContext) -> None:
    args = context.args
    await _set_paused(update, context, args[0] if args else None, False, " ".join(args[1:]) or None)


async def withdraw(update: Update, context: BotContext, subject: str | None = None) -> None:
    if not (found := await require_coordinator(update, context, "withdraw")):
        return
    actor, t = found
    subject = subject or (context.args[0] if context.args else None)
    detail = await guarded(update, t, subject, lambda: patients_service.detail(
        runtime(context), actor, subject_id=subject or "", update_id=update.update_id, what="withdraw"))
    if detail is REFUSED:
        return
    if detail.patient.status == PatientStatus.WITHDRAWN:
        await tell(update, patient_views.patient_refusal(t, "withdrawn"))
        return
    await set_pending(update, context, "withdraw_reason", subject=detail.patient.subject_id)
    if update.callback_query is not None:
        await update.callback_query.answer()
    await context.bot.send_message(update.effective_user.id,
                                   patient_views.ask_reason(t, "withdraw", detail.patient.subject_id))


async def on_action(update: Update, context: BotContext) -> None:
    action, subject = context.match.groups()
    if action in (cb.PAUSE, cb.RESUME):
        await _set_paused(update, context, subject, action == cb.PAUSE, None)
    elif action == cb.WITHDRAW:
        await withdraw(update, context, subject)
    elif action == cb.REBIND:
        await rebind(update, context, subject)


async def answer_pause(update: Update, context: BotContext, pending: dict, reason: str) -> None:
    await _set_paused(update, context, pending["subject"], True, reason)


async def answer_withdraw(update: Update, context: BotContext, pending: dict, reason: str) -> None:
    if not (found := await require_coordinator(update, context, "withdraw")):
        return
    actor, t = found
    done = await guarded(update, t, pending["subject"], lambda: patients_service.withdraw(
        runtime(context), actor, subject_id=pending["subject"], reason=reason, update_id=update.update_id))
    if done is not REFUSED:
        await update.effective_message.reply_text("✅ " + t._(
            "{subject} is withdrawn. No more messages will be sent; all data is kept.", subject=done.subject_id))


async def correct_day(update: Update, context: BotContext) -> None:
    """/dose SUBJECT YYYY-MM-DD taken|missed|not_reported REASON — correct one dose day."""
    if not (found := await require_coordinator(update, context, "dose")):
        return
    actor, t = found
    args = context.args or []
    day = parse_date(args[1]) if len(args) > 1 else None
    if len(args) < 4 or day is None or args[2] not in patients_service.CORRECTABLE:
        await tell(update, patient_views.patient_refusal(t, "bad_state"))
        return
    subject, state, reason = args[0].upper(), args[2], " ".join(args[3:])
    dose = await guarded(update, t, subject, lambda: patients_service.correct_day(
        runtime(context), actor, subject_id=subject, local_date=day, new_state=state, reason=reason,
        update_id=update.update_id))
    if dose is REFUSED:
        return
    await tell(update, t._("{subject}, {date}: corrected to {state}. Reason recorded.", subject=subject,
                           date=t.date(day), state=state_label(t, dose.state)))


def handlers() -> list[BaseHandler]:
    return [CallbackQueryHandler(on_action, pattern=cb.pattern(
        "pt", cb.one_of((cb.PAUSE, cb.RESUME, cb.WITHDRAW, cb.REBIND)), cb.ARG))]
