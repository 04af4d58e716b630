"""The context every handler receives (PTB's `ContextTypes(context=BotContext)`): the runtime,
the caller's language and the caller as a patient or a staff member, one lookup per update.

PTB builds one context per update and passes it to every handler group, so what the gate
(bot.channels.telegram.handlers.gate) learns before the handlers run is here for all of them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from telegram.ext import Application, CallbackContext, ContextTypes, ExtBot

from bot.channels.port import Account
from bot.db.models import Patient
from bot.i18n import Translator, resolve_locale
from bot.services.queries import CallerFacts, patient_by_account
from bot.services.runtime import KnownPatient, Runtime

if TYPE_CHECKING:
    from bot.config import Coordinator, Site

_UNKNOWN = object()


class BotContext(CallbackContext[ExtBot, dict, dict, dict]):
    def __init__(self, application: Application, chat_id: int | None = None, user_id: int | None = None) -> None:
        super().__init__(application, chat_id, user_id)
        self.stranger_locale: str | None = None  # a language chosen before enrolment ended (set by the gate)
        self.caller_facts: CallerFacts | None = None  # set by the gate; None: unknown, look it up
        self._patient: object = _UNKNOWN

    @property
    def runtime(self) -> Runtime:
        return self.application.bot_data["runtime"]

    @property
    def account(self) -> Account | None:
        """The caller's account (None for an update without a user, e.g. a channel post)."""
        return Account.telegram(self._user_id) if self._user_id is not None else None

    @property
    def staff(self) -> tuple[Site, Coordinator] | None:
        """(site, coordinator) if the caller is configured study staff."""
        return self.runtime.staff(self.account)

    async def patient(self) -> Patient | None:
        """The caller's active patient row, looked up once per update (the emergency path calls
        this only where a database fault is caught)."""
        if self._patient is _UNKNOWN:
            rt = self.runtime
            async with rt.single() as session:
                patient = await patient_by_account(session, account=self.account)
            self._remember(patient)
            self._patient = patient
        return self._patient

    def _remember(self, patient: Patient | None) -> None:
        """The caller is this patient: kept for the emergency path and the gate (no stranger's
        language to look up for them)."""
        account = self.account
        if patient is not None and account is not None and patient.account_key == account.key:
            self.runtime.known_patients.remember(account, KnownPatient(patient.site_id, patient.locale,
                                                                       patient.timezone))

    def patient_changed(self, patient: Patient | None) -> None:
        """A use case in this update changed the caller's patient row (a new language)."""
        self._patient = patient

    def translator(self, patient: Patient | None = None, language_code: str | None = None) -> Translator:
        """The patient's language, else the staff member's, else the one chosen before enrolling,
        else Telegram's language code mapped to a catalog."""
        if patient is not None:
            self._remember(patient)  # a service found the caller's row: the next update needs no lookup
            return Translator(patient.locale, patient.timezone)
        if (staff := self.staff) is not None:
            site, person = staff
            return Translator(person.locale, site.tz)
        locale = resolve_locale(stored=self.stranger_locale, language_code=language_code)
        return Translator(locale, self.runtime.settings.sites[0].tz)


CONTEXT_TYPES = ContextTypes(context=BotContext)
