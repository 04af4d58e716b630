"""The command menus Telegram shows beside the text box: one for patients per language, and one
per study-team member in their own language. The family-helper commands appear only while
`[helpers]` is switched on."""

from __future__ import annotations

import logging

from telegram import Bot, BotCommand, BotCommandScopeAllPrivateChats, BotCommandScopeChat
from telegram.error import TelegramError

from bot.config import Settings
from bot.i18n import SUPPORTED, Translator

log = logging.getLogger("adherence.menus")


def patient_commands(t: Translator, settings: Settings) -> list[BotCommand]:
    commands = [
        BotCommand("status", t._("This course at a glance")),
        BotCommand("report", t._("Report a symptom")),
        BotCommand("time", t._("Change the reminder time")),
        BotCommand("language", t._("Language")),
    ]
    if settings.helpers.enabled:
        commands.append(BotCommand("helpers", t._("A family member who helps you")))
    return commands + [BotCommand("help", t._("Help")), BotCommand("stop", t._("Pause reminders"))]


def coordinator_commands(t: Translator, settings: Settings) -> list[BotCommand]:
    commands = [
        BotCommand("patients", t._("Your site's patients")),
        BotCommand("alerts", t._("Open alerts")),
        BotCommand("invite", t._("Invite a patient (link and QR code)")),
        BotCommand("cycle", t._("Register the next cycle")),
        BotCommand("patient", t._("One patient in detail")),
        BotCommand("report", t._("Adherence chart")),
        BotCommand("digest", t._("Today's digest")),
        BotCommand("export", t._("Export all data (CSV)")),
        BotCommand("invites", t._("Open invitations")),
    ]
    if settings.helpers.enabled:
        commands.append(BotCommand("helper", t._("Invite a patient's family helper")))
    return commands + [BotCommand("help", t._("All study team commands"))]


async def install(bot: Bot, settings: Settings) -> None:
    for locale in SUPPORTED:
        language = "zh" if locale == "zh_Hans" else "en"
        await bot.set_my_commands(patient_commands(Translator(locale), settings),
                                  scope=BotCommandScopeAllPrivateChats(), language_code=language)
    await bot.set_my_commands(patient_commands(Translator("zh_Hans"), settings), scope=BotCommandScopeAllPrivateChats())
    # Telegram refuses a chat scope for someone who has never opened the bot: they get the menu
    # on the next start.
    for site in settings.sites:
        for person in site.coordinators:
            try:
                await bot.set_my_commands(coordinator_commands(Translator(person.locale), settings),
                                          scope=BotCommandScopeChat(person.telegram_id))
            except TelegramError as error:
                log.info("event=coordinator_menu_skipped site=%s error=%s", site.id, type(error).__name__)
