"""A coordinator's typed answers (a reason, a corrected date) to the question the bot just asked,
and /cancel. Anything else a coordinator types gets the command list."""

from __future__ import annotations

from telegram import Update

from bot.channels.telegram.handlers import coord_courses, coord_messages, coord_patients
from bot.channels.telegram.handlers.common import runtime
from bot.channels.telegram.handlers.context import BotContext
from bot.channels.telegram.handlers.coord_common import coordinator_translator, require_coordinator, take_pending
from bot.services.coord_access import coordinator_actor
from bot.channels.port import Account
from bot.render import coordinator as render
from bot.services import dialogs


async def on_text(update: Update, context: BotContext) -> None:
    pending = await take_pending(update, context)
    text = (update.effective_message.text or "").strip()
    if pending is None or not text:
        t = coordinator_translator(context, update.effective_user.id)
        rt = runtime(context)
        actor = coordinator_actor(rt, update.effective_user.id)
        await update.effective_message.reply_text(render.help_text(t, rt.settings, actor.home_site if actor else None))
    elif pending["step"] == "lapsed":
        t = coordinator_translator(context, update.effective_user.id)
        await update.effective_message.reply_text(render.expired_step(t))
    elif pending["step"] == "withdraw_reason":
        await coord_patients.answer_withdraw(update, context, pending, text)
    elif pending["step"] == "reply":
        await coord_messages.answer_reply(update, context, pending, text)
    elif pending["step"] == "pause_reason":
        await coord_patients.answer_pause(update, context, pending, text)
    else:
        await coord_courses.answer_pending(update, context, pending, text)


async def cancel(update: Update, context: BotContext) -> None:
    had = await dialogs.recall(runtime(context), user=Account.telegram(update.effective_user.id).key,
                               kind=dialogs.COORDINATOR_QUESTION) is not None
    if not (found := await require_coordinator(update, context, "cancel")):
        return
    t = found[1]
    await update.effective_message.reply_text(t._("Stopped. Nothing was changed.") if had else
                                              t._("There is no open question."))
