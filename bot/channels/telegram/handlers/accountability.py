"""Buttons under the tablet question (0-5, More than 5) and a typed number answering it."""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler

from bot.channels.telegram.handlers.common import answer_quietly, runtime, translator_for
from bot.channels.telegram.handlers.context import BotContext
from bot.channels.telegram.handlers.dosing import edit_unless_unchanged
from bot.channels.port import Account
from bot.render import accountability as render
from bot.render import callbacks as cb
from bot.services import accountability


async def on_callback(update: Update, context: BotContext) -> None:
    course_id, choice = int(context.match[1]), context.match[2]
    rt = runtime(context)
    query, user_id = update.callback_query, update.effective_user.id
    if choice == render.MORE:
        result = await accountability.authorize(rt, account=Account.telegram(user_id), course_id=course_id,
                                                update_id=update.update_id)
    else:
        result = await accountability.record(rt, account=Account.telegram(user_id), course_id=course_id, left=int(choice),
                                             source=accountability.BUTTON, update_id=update.update_id)
    t = translator_for(update, context, result.patient)
    if result.status == "not_yours":
        await answer_quietly(query, t._("This button is not for you."), show_alert=True)
    elif result.status in ("off", "course_gone", "invalid"):
        await answer_quietly(query, t._("This button is no longer valid."), show_alert=True)
    elif result.status == "already":
        await answer_quietly(query, t._("Already recorded. Thank you."))
        if result.count is not None:
            await edit_unless_unchanged(query, *render.recorded(t, result.count.reported_left))
    elif result.status == "ok":  # More than 5: the patient types the number
        await answer_quietly(query)
        await edit_unless_unchanged(query, *render.type_it(t))
    else:
        await answer_quietly(query, t._("Recorded."))
        await edit_unless_unchanged(query, *render.recorded(t, result.count.reported_left))


async def on_typed(update: Update, context: BotContext) -> bool:
    """A number typed while a tablet question is open answers it; returns whether it did."""
    rt = runtime(context)
    result = await accountability.record_typed(rt, account=Account.telegram(update.effective_user.id),
                                               text=update.effective_message.text or "", update_id=update.update_id)
    if result is None:
        return False
    t = translator_for(update, context, result.patient)
    if result.status == "recorded":
        await update.effective_message.reply_text(render.recorded(t, result.count.reported_left)[0])
        return True
    if result.status == "already":
        await update.effective_message.reply_text(t._("Already recorded. Thank you."))
        return True
    return False


def handlers() -> list[BaseHandler]:
    return [CallbackQueryHandler(on_callback, pattern=cb.pattern("tc", cb.ID, "([0-5m])"))]
