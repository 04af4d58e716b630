"""The application factory: the only place where handlers, scheduler and settings meet."""

from __future__ import annotations

import logging
import os
from collections import OrderedDict

from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import Update
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CommandHandler,
    MessageHandler,
    filters,
)
from telegram.request import BaseRequest, HTTPXRequest

from bot.channels.telegram import menus, reachability
from bot.channels.telegram.channel import TelegramChannel
from bot.channels.telegram.floodgate import TelegramRateLimiter
from bot.config import Settings
from bot.db.roles import audit_guard_problem
from bot.channels.telegram.handlers import family as family_handlers
from bot.channels.telegram.handlers import visits as visit_handlers
from bot.channels.telegram.handlers import (
    commands,
    coord_courses,
    coord_dialog,
    coord_invites,
    coord_patients,
    coord_reports,
    coordinator,
    gate,
    router,
)
from bot.channels.telegram.handlers.common import answer_quietly, fallback_translator, known_sites
from bot.channels.telegram.handlers.context import CONTEXT_TYPES, BotContext
from bot.render.patient import site_phones
from bot.logs import install_secret_scrubber
from bot.polling import PollingOutage, PollingRequest, is_polling_network_error
from bot.services.clock import Clock, SystemClock
from bot.services.runtime import Runtime
from scheduler.service import Scheduler

log = logging.getLogger("adherence.app")


class _Answered:
    """The updates this process already answered with an error message (several handlers of one
    update may fail; an update is handled by one process, see bot.channels.telegram.handlers.gate)."""

    def __init__(self, capacity: int = 1_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[int, None] = OrderedDict()

    def first_time(self, update_id: int) -> bool:
        if update_id in self._ids:
            return False
        self._ids[update_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True


async def _on_error(update: object, context: BotContext) -> None:
    """Never leave a patient without an answer, never leak internals (or the token) to them.
    The answer carries 120 and the site's phone (every site's if we cannot tell which, e.g.
    with the database down), and goes out once per update however many handlers failed."""
    if is_polling_network_error(update, context.error):
        log.debug("event=poll_failed error=%s", type(context.error).__name__)  # bot.polling logs the outage
        return
    log.error("event=handler_error error=%s", type(context.error).__name__, exc_info=context.error)
    if not (isinstance(update, Update) and update.effective_chat is not None and update.effective_user is not None):
        return
    if not context.application.bot_data.setdefault("error_replies", _Answered()).first_time(update.update_id):
        return
    t = fallback_translator(update, context)
    sites = known_sites(context, update.effective_user.id)
    text = "\n".join([t._("Sorry, something went wrong and your last action may not have been saved. "
                          "Please try again, or phone your study site."),
                      t._("If you feel unwell, call 120 now."), site_phones(t, sites)])
    await answer_quietly(update.callback_query)  # stop the button's spinner; the message says why
    try:
        await context.bot.send_message(update.effective_chat.id, text)
    except Exception:  # the error path must not raise
        log.warning("event=error_reply_failed")


async def on_startup(application: Application) -> None:
    """Runs once before updates are handled: localized command menus, then the scheduler
    (rebuilt from the database, after recovering anything a crash left mid-send)."""
    await menus.install(application.bot, application.bot_data["runtime"].settings)
    problem = await audit_guard_problem(application.bot_data["runtime"].engine)
    if problem:
        log.warning("event=audit_log_owned_by_bot_role %s", problem)
    scheduler: Scheduler = application.bot_data["scheduler"]
    await scheduler.start(application.job_queue)  # also queues the morning digests (scheduler/digests.py)


async def on_stop(application: Application) -> None:
    """After PTB stopped (run_polling / run_webhook): stop the scheduler for good and, on SQLite,
    release its ownership of the file, so the next start does not wait to take over."""
    await application.bot_data["scheduler"].stop()




# Study-team commands: anyone may send them, only configured coordinators get past the check.
COORDINATOR_COMMANDS = {
    "invite": coord_invites.invite,
    "invites": coord_invites.invites,
    "rebind": coord_invites.rebind,
    "cycle": coord_courses.cycle,
    "correct": coord_courses.correct,
    "cancelcycle": coord_courses.cancel_cycle,
    "patients": coord_patients.patients,
    "patient": coord_patients.patient,
    "pause": coord_patients.pause,
    "resume": coord_patients.resume,
    "withdraw": coord_patients.withdraw,
    "dose": coord_patients.correct_day,
    "alerts": coordinator.alerts,
    "ack": coordinator.ack_with_code,
    "digest": coord_reports.digest_now,
    "export": coord_reports.export,
    "cancel": coord_dialog.cancel,
    "visit": visit_handlers.visit,
}


def build_application(settings: Settings, *, engine: AsyncEngine, request: BaseRequest | None = None,
                      clock: Clock | None = None, scheduler_enabled: bool = True) -> Application:
    # PTB 22 warns on every RetryAfter.retry_after read unless time periods are timedeltas;
    # our code accepts both (bot.channels.telegram.floodgate.retry_after_seconds).
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    # Before the Bot exists: PTB and httpx log URLs that contain the token.
    install_secret_scrubber(settings.token, settings.telegram.webhook.secret_token.get_secret_value(),
                            settings.email.password.get_secret_value())
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
        .get_updates_request(PollingRequest(read_timeout=timeout + 30, connect_timeout=timeout,
                                            outage=PollingOutage()))
        .concurrent_updates(True)
        .context_types(CONTEXT_TYPES)
        .post_init(on_startup)
        .post_stop(on_stop)
    )
    application = builder.build()
    channels = {TelegramChannel.name: TelegramChannel(application.bot)}
    if settings.email.enabled:
        from bot.channels.email.channel import EmailChannel  # aiosmtplib only where mail is configured

        channels[EmailChannel.name] = EmailChannel(settings.email)
    scheduler = Scheduler(rt, channels)
    if scheduler_enabled:
        rt.wake = scheduler.wake
    application.bot_data["runtime"] = rt
    application.bot_data["scheduler"] = scheduler

    application.add_handler(gate.handler(), group=gate.GROUP)
    reachability.register(application)  # a patient who writes again is reachable again
    family_handlers.register(application)  # /helpers, /helper, helper links and everything a helper sends
    private = filters.ChatType.PRIVATE
    # Checked again on every call (coord_access); this filter only picks the right /start, /help and text.
    team = filters.User(user_id=[c.telegram_id for site in settings.sites for c in site.coordinators])
    application.add_handler(CommandHandler(["start", "help"], coordinator.start_or_help, filters=private & team))
    application.add_handler(CommandHandler("start", commands.start, filters=private))
    application.add_handler(CommandHandler("help", commands.help_command, filters=private))
    application.add_handler(CommandHandler("status", commands.status, filters=private))
    # /report: the chart for coordinators, the symptom picker for everyone else.
    application.add_handler(CommandHandler("report", coord_reports.report, filters=private))
    application.add_handler(CommandHandler("language", commands.language, filters=private))
    application.add_handler(CommandHandler("time", commands.time_command, filters=private))
    application.add_handler(CommandHandler("stop", commands.stop, filters=private))
    for name, callback in COORDINATOR_COMMANDS.items():
        application.add_handler(CommandHandler(name, callback, filters=private))
    application.add_handler(MessageHandler(private & team & filters.COMMAND, coordinator.unknown_command))
    application.add_handler(MessageHandler(private & filters.COMMAND, commands.unknown_command))
    router.register(application, private=private, team=team)
    media = (filters.VOICE | filters.AUDIO | filters.PHOTO | filters.VIDEO | filters.VIDEO_NOTE | filters.Document.ALL
             | filters.Sticker.ALL | filters.ANIMATION | filters.LOCATION | filters.CONTACT)
    application.add_handler(MessageHandler(private & ~team & media, commands.on_media))
    application.add_error_handler(_on_error)
    return application
