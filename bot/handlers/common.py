"""Helpers every handler uses: the runtime, the caller's language, the caller's patient row."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from bot.db.models import Patient
from bot.i18n import Translator, resolve_locale
from bot.services.queries import patient_by_telegram
from bot.services.runtime import Runtime


def runtime(context: ContextTypes.DEFAULT_TYPE) -> Runtime:
    return context.application.bot_data["runtime"]


async def current_patient(context: ContextTypes.DEFAULT_TYPE, user_id: int) -> Patient | None:
    rt = runtime(context)
    async with rt.session() as session:
        return await patient_by_telegram(session, telegram_user_id=user_id)


def translator_for(update: Update, context: ContextTypes.DEFAULT_TYPE, patient: Patient | None = None) -> Translator:
    rt = runtime(context)
    user = update.effective_user
    coordinator = rt.settings_coordinator(user.id) if user else None
    if patient is not None:
        return Translator(patient.locale, patient.timezone)
    if coordinator is not None:
        site, person = coordinator
        return Translator(person.locale, site.tz)
    stored = context.user_data.get("locale") if context.user_data is not None else None
    site = rt.settings.sites[0]
    locale = resolve_locale(stored=stored, language_code=user.language_code if user else None)
    return Translator(locale, site.tz)
