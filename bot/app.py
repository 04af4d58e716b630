"""The application factory: the only place where handlers, scheduler and settings meet."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import BotCommand, BotCommandScopeAllPrivateChats, Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.request import BaseRequest, HTTPXRequest

from bot.config import Settings
from bot.handlers import commands, router, symptoms
from bot.handlers.common import translator_for
from bot.i18n import SUPPORTED, Translator
from bot.services.clock import Clock, SystemClock
from bot.services.runtime import Runtime
from scheduler.ratelimit import TelegramRateLimiter
from scheduler.service import Scheduler

log = logging.getLogger("adherence.app")


def _commands(t: Translator) -> list[BotCommand]:
    return [
        BotCommand("status", t._("This course at a glance")),
        BotCommand("report", t._("Report a symptom")),
        BotCommand("time", t._("Change the reminder time")),
        BotCommand("language", t._("Language")),
        BotCommand("help", t._("Help")),
        BotCommand("stop", t._("Pause reminders")),
    ]


async def _on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Never leave a patient without an answer, never leak internals (or the token) to them."""
    log.error("event=handler_error error=%s", type(context.error).__name__, exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat is not None and update.effective_user is not None:
        t = translator_for(update, context)
        site = context.application.bot_data["runtime"].settings.sites[0]
        try:
            text = t._("Sorry, something went wrong and your last action may not have been saved. Please try again, "
                       "or phone your study site.")
            if update.callback_query is not None:
                await update.callback_query.answer(text, show_alert=True)
            else:
                await update.effective_message.reply_text(text)
        except Exception:  # the error path must not raise
            log.warning("event=error_reply_failed site=%s", site.id)


async def on_startup(application: Application) -> None:
    """Runs once before updates are handled: localized command menus, then the scheduler
    (rebuilt from the database, after recovering anything a crash left mid-send)."""
    for locale in SUPPORTED:
        language = "zh" if locale == "zh_Hans" else "en"
        await application.bot.set_my_commands(_commands(Translator(locale)), scope=BotCommandScopeAllPrivateChats(),
                                              language_code=language)
    await application.bot.set_my_commands(_commands(Translator("zh_Hans")), scope=BotCommandScopeAllPrivateChats())
    scheduler: Scheduler = application.bot_data["scheduler"]
    await scheduler.start(application.job_queue)


def build_application(settings: Settings, *, engine: AsyncEngine, request: BaseRequest | None = None,
                      clock: Clock | None = None, scheduler_enabled: bool = True) -> Application:
    rt = Runtime(settings=settings, engine=engine, clock=clock or SystemClock())
    delivery = settings.delivery
    timeout = delivery.send_timeout_seconds
    builder = (
        ApplicationBuilder()
        .token(settings.token)
        .base_url(settings.telegram.base_url)
        .base_file_url(settings.telegram.base_url.replace("/bot", "/file/bot"))
        .rate_limiter(TelegramRateLimiter(global_per_second=delivery.global_per_second,
                                          per_chat_per_second=delivery.per_chat_per_second))
        .request(request or HTTPXRequest(connection_pool_size=64, read_timeout=timeout, write_timeout=timeout,
                                         connect_timeout=timeout, pool_timeout=timeout))
        .get_updates_request(HTTPXRequest(read_timeout=timeout + 30, connect_timeout=timeout))
        .concurrent_updates(True)
        .post_init(on_startup)
    )
    application = builder.build()
    scheduler = Scheduler(rt, application.bot)
    if scheduler_enabled:
        rt.wake = scheduler.wake
    application.bot_data["runtime"] = rt
    application.bot_data["scheduler"] = scheduler

    private = filters.ChatType.PRIVATE
    application.add_handler(CommandHandler("start", commands.start, filters=private))
    application.add_handler(CommandHandler("help", commands.help_command, filters=private))
    application.add_handler(CommandHandler("status", commands.status, filters=private))
    application.add_handler(CommandHandler("report", symptoms.start, filters=private))
    application.add_handler(CommandHandler("language", commands.language, filters=private))
    application.add_handler(CommandHandler("time", commands.time_command, filters=private))
    application.add_handler(CommandHandler("stop", commands.stop, filters=private))
    application.add_handler(CallbackQueryHandler(router.on_callback))
    application.add_handler(MessageHandler(private & filters.TEXT & ~filters.COMMAND, commands.on_text))
    application.add_error_handler(_on_error)
    return application
