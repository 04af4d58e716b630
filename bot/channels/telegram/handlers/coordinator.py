"""Coordinator basics: /start and /help for the study team, acknowledging alerts (every copy is
edited, each in its reader's language), and /alerts."""

from __future__ import annotations

from telegram import Update
from telegram.error import BadRequest
from telegram.ext import BaseHandler, CallbackQueryHandler

from bot.channels.telegram.keyboards import as_markup
from bot.channels.telegram.handlers import commands
from bot.channels.telegram.handlers.common import runtime, translator_for
from bot.channels.telegram.handlers.context import BotContext
from bot.channels.telegram.handlers.coord_common import require_coordinator
from bot.channels.port import Account, Recipient
from bot.render import callbacks as cb
from bot.render import coordinator as render
from bot.services import alerts as alert_service
from bot.services.alerts import AckResult

ALERTS_SHOWN = 10


async def start_or_help(update: Update, context: BotContext) -> None:
    """A coordinator's /start or /help; /start with an invitation code still goes to enrolment."""
    if context.args and update.message and update.message.text.startswith("/start"):
        await commands.start(update, context)
        return
    if not (found := await require_coordinator(update, context, "help")):
        return
    actor, t = found
    await update.effective_message.reply_text(render.help_text(t, runtime(context).settings, actor.home_site))


async def unknown_command(update: Update, context: BotContext) -> None:
    """A staff member's mistyped command: say so and point at /help (the full list)."""
    t = translator_for(update, context)
    await update.effective_message.reply_text(t._("Unknown command. Send /help for the list of commands."))


async def edit_copies(context: BotContext, result: AckResult, outcome=None) -> None:
    """Every copy, in its reader's language; `outcome(t)` adds what was done (e.g. the course confirmed)."""
    rt = runtime(context)
    for copy in result.copies:  # Telegram copies: a mail cannot be edited
        chat_id, reader = int(copy.address), Recipient(copy.channel, copy.address)
        t = render.reader_translator(rt.settings, reader, result.alert.site_id)
        text, markup = render.alert_message(t, rt.settings, result.alert,
                                            escalated=alert_service.escalated_copy(rt.settings, result.alert, reader))
        if outcome is not None:  # it replaces the plain "acknowledged by" line (the last one)
            text = text.rsplit("\n", 1)[0] + "\n" + outcome(t)
        try:
            await context.bot.edit_message_text(text, chat_id=chat_id, message_id=copy.message_id,
                                                reply_markup=as_markup(markup))
        except BadRequest:
            pass  # already edited, or deleted by the chat: nothing to fix


async def acknowledge(update: Update, context: BotContext, alert_id: int) -> AckResult:
    """Record the acknowledgement (or the refusal, audited) and update every copy."""
    rt = runtime(context)
    query = update.callback_query
    result = await alert_service.acknowledge(rt, alert_id=alert_id, account=Account.telegram(update.effective_user.id),
                                          update_id=update.update_id)
    if result.status == "refused":
        t = translator_for(update, context)
        await query.answer(t._("Only this site's coordinators can acknowledge this alert."), show_alert=True)
    else:
        await edit_copies(context, result)
    return result


async def on_ack(update: Update, context: BotContext) -> None:
    result = await acknowledge(update, context, int(context.match[1]))
    if result.status != "refused":
        t = translator_for(update, context)
        await update.callback_query.answer(t._("Acknowledged.") if result.status == "acknowledged"
                                           else t._("Already acknowledged."))


async def ack_with_code(update: Update, context: BotContext) -> None:
    """/ack CODE: the code from an alert mail (staff of the alert's site, or its escalation contact)."""
    t = translator_for(update, context)
    if not context.args:
        await update.effective_message.reply_text(t._("Send the code from the alert mail, e.g. /ack 123-K7Q2M9XZTA"))
        return
    result = await alert_service.acknowledge_by_code(runtime(context), code="".join(context.args),
                                                  account=Account.telegram(update.effective_user.id), update_id=update.update_id)
    if result.status == "invalid":
        await update.effective_message.reply_text(t._("This code matches no alert. Check it against the mail."))
    elif result.status == "refused":
        await update.effective_message.reply_text(t._("Only this site's coordinators can acknowledge this alert."))
    else:
        await edit_copies(context, result)
        await update.effective_message.reply_text(t._("Acknowledged.") if result.status == "acknowledged"
                                                  else t._("Already acknowledged."))


async def alerts(update: Update, context: BotContext) -> None:
    """Open alerts for the caller's sites, newest last, each with its buttons; these copies are
    recorded so that an acknowledgement elsewhere edits them too."""
    if not (found := await require_coordinator(update, context, "alerts")):
        return
    actor, t = found
    rt = runtime(context)
    site = context.args[0].upper() if context.args else None
    rows = await alert_service.open_alerts(rt, actor, site_id=site)
    if not rows:
        await update.effective_message.reply_text(t._("No open alerts."))
        return
    await update.effective_message.reply_text(t._("Open alerts: {count}", count=len(rows)) + (
        "\n" + t._("Showing the latest {shown}.", shown=ALERTS_SHOWN) if len(rows) > ALERTS_SHOWN else ""))
    for alert in rows[-ALERTS_SHOWN:]:
        text, markup = render.alert_message(t, rt.settings, alert, escalated=alert.escalated_at is not None)
        message = await update.effective_message.reply_text(text, reply_markup=as_markup(markup))
        await alert_service.record_copy(rt, alert_id=alert.id, to=Recipient.telegram(message.chat_id), message_id=message.message_id)


def handlers() -> list[BaseHandler]:
    return [CallbackQueryHandler(on_ack, pattern=cb.pattern("a", cb.ID))]
