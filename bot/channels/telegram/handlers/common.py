"""Helpers every handler uses: the runtime, the caller's language (see bot.channels.telegram.handlers.context)."""

from __future__ import annotations

import logging

from telegram import CallbackQuery, Update
from telegram.error import TelegramError

from bot.channels.port import Account
from bot.config import Site
from bot.db.models import Patient
from bot.channels.telegram.handlers.context import BotContext
from bot.i18n import Translator
from bot.services.runtime import Runtime

log = logging.getLogger("adherence.handlers")


def runtime(context: BotContext) -> Runtime:
    return context.runtime


def known_sites(context: BotContext, user_id: int | None, site_hint: str | None = None) -> list[Site]:
    """The caller's site without asking the database: remembered from an earlier lookup, else a
    hint carried by the button (a site id, checked against the config), else every site."""
    rt = runtime(context)
    known = rt.known_patients.get(Account.telegram(user_id)) if user_id is not None else None
    site_ids = [s.id for s in rt.settings.sites]
    site_id = known.site_id if known is not None else site_hint
    if site_id in site_ids:
        return [rt.settings.site(site_id)]
    return list(rt.settings.sites)


def fallback_translator(update: Update, context: BotContext) -> Translator:
    """The caller's language without asking the database (the emergency and error paths)."""
    rt = runtime(context)
    user = update.effective_user
    known = rt.known_patients.get(Account.telegram(user.id)) if user is not None else None
    if known is not None:
        return Translator(known.locale, known.timezone)
    return translator_for(update, context)


async def answer_quietly(query: CallbackQuery | None, text: str | None = None, *, show_alert: bool = False) -> bool:
    """Answer a button tap; a failure ("query is too old" after a backlog, a network error) must
    never stop what the tap asked for."""
    if query is None:
        return False
    try:
        await query.answer(text, show_alert=show_alert)
        return True
    except TelegramError as error:
        log.warning("event=callback_answer_failed error=%s", type(error).__name__)
        return False


def translator_for(update: Update, context: BotContext, patient: Patient | None = None) -> Translator:
    user = update.effective_user
    return context.translator(patient, user.language_code if user else None)
