"""A coordinator answers a patient's relayed message: Reply on the alert, then the next text
goes to the patient as a message from the study team (stored, audited, sent from the outbox)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler

from bot.channels.telegram.handlers.common import runtime
from bot.channels.telegram.handlers.context import BotContext
from bot.channels.telegram.handlers.coord_common import require_coordinator, set_pending, tell
from bot.channels.port import Account
from bot.render import callbacks as cb
from bot.services import messages
from bot.services.messages import ReplyRefused


async def on_reply(update: Update, context: BotContext) -> None:
    alert_id = int(context.match[1])
    if not (found := await require_coordinator(update, context, "reply")):
        return
    t = found[1]
    await set_pending(update, context, "reply", alert_id=alert_id)
    await update.callback_query.answer()
    await update.effective_message.reply_text(
        t._("Type your reply now. It goes to the patient as a message from the study team. /cancel to stop."))


async def answer_reply(update: Update, context: BotContext, pending: dict, text: str) -> None:
    if not (found := await require_coordinator(update, context, "reply")):
        return
    t = found[1]
    try:
        subject = await messages.reply(runtime(context), staff=Account.telegram(update.effective_user.id),
                                       alert_id=pending["alert_id"], text=text, update_id=update.update_id)
    except ReplyRefused as refused:
        await tell(update, t._("Only this site's coordinators can answer this patient.")
                   if refused.code == "not_your_site" else t._("This message can no longer be answered."))
        return
    await update.effective_message.reply_text(t._("Sent to {subject}.", subject=subject))


def handlers() -> list[BaseHandler]:
    return [CallbackQueryHandler(on_reply, pattern=cb.pattern("rp", cb.ID))]
