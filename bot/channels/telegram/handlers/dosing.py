"""Buttons under reminders: Taken, Remind me later, Not today, and an optional missed reason."""

from __future__ import annotations

from telegram import Update
from telegram.error import BadRequest
from telegram.ext import BaseHandler, CallbackQueryHandler

from bot.channels.telegram.keyboards import as_markup
from bot.channels.port import Account
from bot.domain.dose import Answer, AnswerSource
from bot.channels.telegram.handlers.common import runtime, translator_for
from bot.channels.telegram.handlers.context import BotContext
from bot.render import callbacks as cb
from bot.render import patient as render
from bot.services import doses


async def on_dose(update: Update, context: BotContext) -> None:
    dose_day_id, action = int(context.match[1]), context.match[2]
    rt = runtime(context)
    query = update.callback_query
    user_id = update.effective_user.id
    if action == cb.LATER:
        result = await doses.snooze(rt, account=Account.telegram(user_id), dose_day_id=dose_day_id, update_id=update.update_id)
    elif action == cb.UNDO:
        result = await doses.undo_missed(rt, account=Account.telegram(user_id), dose_day_id=dose_day_id,
                                         update_id=update.update_id)
    else:
        choice = Answer.TAKEN if action in (cb.TAKEN, cb.LATE_TAKEN, cb.CATCH_UP_TAKEN) else Answer.MISSED
        source = {cb.LATE_TAKEN: AnswerSource.LATE_QUESTION, cb.LATE_MISSED: AnswerSource.LATE_QUESTION,
                  cb.CATCH_UP_TAKEN: AnswerSource.CATCH_UP}.get(action, AnswerSource.BUTTON)
        result = await doses.answer(rt, account=Account.telegram(user_id), dose_day_id=dose_day_id, choice=choice,
                                    source=source, update_id=update.update_id,
                                    message_id=query.message.message_id if query.message is not None else None)
        if action == cb.CATCH_UP_TAKEN and result.status in ("recorded", "already"):
            await _catch_up_answered(update, context, result)
            return
    t = translator_for(update, context, result.patient)
    if result.status == "not_yours":
        await query.answer(t._("This button is not for you."), show_alert=True)
    elif result.status == "already":
        await query.answer(t._("Already recorded for that day: {state}. Nothing was changed.",
                               state=render.state_label(t, result.dose.state)), show_alert=True)
        await _show_final(query, t, rt.settings, result.dose)
    elif result.status == "closed":
        await query.answer(t._("This day is over, so this button no longer works. If we did not hear from you, "
                               "we will ask you about it the next morning."), show_alert=True)
        await _drop_buttons(query)
    elif result.status == "not_open":
        await query.answer(t._("Nothing to record for that day. Nothing was changed."), show_alert=True)
        await _drop_buttons(query)
    elif result.status == "too_late":
        await query.answer(t._("That day is closed and can no longer be changed here. Your study team can help."),
                           show_alert=True)
    elif result.status == "no_more_snoozes":
        await query.answer(t._("No more reminders today. Please answer Taken or Not today."), show_alert=True)
    elif result.status == "reopened":
        await query.answer(t._("Undone. Tap Taken once you have taken your tablets today."))
        text, markup = render.reminder(t, rt.settings, result.dose)
        await edit_unless_unchanged(query, text, markup)
    elif result.status == "snoozed":
        await query.answer(t._("OK, we will remind you again in {minutes} minutes.",
                               minutes=rt.settings.reminders.snooze_minutes))
    else:
        await query.answer(t._("Recorded."))
        await _show_final(query, t, rt.settings, result.dose)


async def _show_final(query, t, settings, dose) -> None:
    if dose.state == "taken":
        text, actions = render.taken_confirmation(t, settings, dose)
    elif dose.state == "missed":
        text, actions = render.missed_confirmation(t, settings, dose)
    else:
        return
    markup = as_markup(actions)
    if query.message is not None and (query.message.text != text or query.message.reply_markup != markup):
        await edit_unless_unchanged(query, text, markup)


async def edit_unless_unchanged(query, text: str, actions=None) -> None:
    """Edit the tapped message; an edit that would change nothing (a quick second tap, whose
    message still showed the old text) is skipped silently: no error, no second popup."""
    try:
        await query.edit_message_text(text, reply_markup=as_markup(actions))
    except BadRequest as error:
        if "not modified" not in error.message.lower():
            raise


async def _drop_buttons(query) -> None:
    if query.message is not None and query.message.reply_markup is not None:
        try:
            await query.edit_message_reply_markup(reply_markup=None)
        except BadRequest as error:
            if "not modified" not in error.message.lower():
                raise


async def _catch_up_answered(update: Update, context: BotContext, result) -> None:
    rt = runtime(context)
    t = translator_for(update, context, result.patient)
    await update.callback_query.answer(t._("Recorded: taken on {date}.", date=t.date(result.dose.local_date)))
    remaining = await doses.catch_up_days(rt, patient=result.patient, course_id=result.dose.course_id)
    text, markup = render.catch_up_question(t, rt.settings, remaining, answered=True)
    await edit_unless_unchanged(update.callback_query, text, markup)


async def on_missed_reason(update: Update, context: BotContext) -> None:
    dose_day_id, reason = int(context.match[1]), context.match[2]
    rt = runtime(context)
    result = await doses.add_missed_reason(rt, account=Account.telegram(update.effective_user.id), dose_day_id=dose_day_id,
                                           reason=reason, update_id=update.update_id)
    t = translator_for(update, context, result.patient)
    if result.status == "not_yours":
        await update.callback_query.answer(t._("This button is not for you."), show_alert=True)
        return
    await update.callback_query.answer(t._("Thank you."))
    text, markup = render.missed_confirmation(t, rt.settings, result.dose)  # Undo stays while the day is open
    await edit_unless_unchanged(update.callback_query, text, markup)


def handlers() -> list[BaseHandler]:
    return [CallbackQueryHandler(on_dose, pattern=cb.pattern("d", cb.ID, cb.one_of(cb.DOSE_ACTIONS))),
            CallbackQueryHandler(on_missed_reason, pattern=cb.pattern("r", cb.ID, cb.ARG))]
