"""Coordinator actions available so far: acknowledging alerts (every copy is edited)."""

from __future__ import annotations

from telegram import Update
from telegram.error import BadRequest
from telegram.ext import ContextTypes

from bot.handlers.common import runtime, translator_for
from bot.render import coordinator as render
from bot.services import alerts_ack


async def on_ack(update: Update, context: ContextTypes.DEFAULT_TYPE, alert_id: int) -> None:
    rt = runtime(context)
    query = update.callback_query
    t = translator_for(update, context)
    result = await alerts_ack.acknowledge(rt, alert_id=alert_id, telegram_user_id=update.effective_user.id,
                                          update_id=update.update_id)
    if result.status == "refused":
        await query.answer(t._("Only this site's coordinators can acknowledge this alert."), show_alert=True)
        return
    await query.answer(t._("Acknowledged.") if result.status == "acknowledged" else t._("Already acknowledged."))
    for copy in result.copies:
        text, markup = render.alert_message(t, rt.settings, result.alert)
        try:
            await context.bot.edit_message_text(text, chat_id=copy.chat_id, message_id=copy.message_id,
                                                reply_markup=markup)
        except BadRequest:
            pass  # already edited, or deleted by the chat: nothing to fix
