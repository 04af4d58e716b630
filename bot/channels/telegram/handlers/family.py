"""Family helpers in the chat (issue 14, part 4), wired with `register(application)`.

One handler group runs before the feature handlers and takes what is the helper feature's:
- `/helpers` (the patient: consent, invite, remove, withdraw) and `/helper` (coordinators),
- `hf:` buttons, and helper invitation links (`/start <token>` or the token typed),
- every update from a helper: their /status, /report, menu, a symptom note; a helper who was
  removed (or whose patient withdrew consent or left the study) is told calmly that they are cut
  off. Symptom picker buttons (`s:`) go on to the ordinary symptom handler, which records the
  report as the helper's (bot.services.symptoms).
Anything else passes through untouched.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import Application, ApplicationHandlerStop, TypeHandler

from bot.domain.status import PatientStatus
from bot.channels.telegram.keyboards import as_markup
from bot.channels.port import Account
from bot.db.models import Patient
from bot.domain.tokens import looks_like_token
from bot.domain.triage import TriageLevel
from bot.channels.telegram.handlers import symptoms
from bot.channels.telegram.handlers.messages import kind_and_text
from bot.channels.telegram.handlers.common import answer_quietly, runtime, translator_for
from bot.channels.telegram.handlers.context import BotContext
from bot.channels.telegram.handlers.coord_common import REFUSED, example_subject, guarded, require_coordinator, tell
from bot.i18n import SUPPORTED, Translator
from bot.render import family as render
from bot.render.patient import emergency_advice
from bot.render.patient import status as status_text
from bot.reports.qr import invitation_card_png
from bot.services import family, patients
from bot.services import messages as message_service
from bot.services import symptoms as symptom_service
from bot.services.enrolment import EnrolmentRefused
from bot.services.family import HelperRefused, HelperView
from bot.services.runtime import KnownPatient

GROUP = -5  # after reachability (-10), before the feature handlers (0)
log = logging.getLogger("adherence.family")


def _command(update: Update) -> tuple[str | None, list[str]]:
    text = (update.message.text or "").strip() if update.message is not None else ""
    if not text.startswith("/"):
        return None, []
    head, *args = text.split()
    return head[1:].split("@")[0].lower(), args


def _menu_texts(label) -> set[str]:
    return {label(Translator(locale)) for locale in SUPPORTED}


async def route(update: Update, context: BotContext) -> None:
    user, chat = update.effective_user, update.effective_chat
    if user is None or user.is_bot or chat is None or chat.type != "private":
        return
    rt = runtime(context)
    query = update.callback_query
    data = (query.data or "") if query is not None else ""
    command, args = _command(update)
    if data.startswith(render.PREFIX + ":"):
        await on_callback(update, context, data.split(":")[1:])
        raise ApplicationHandlerStop
    if rt.staff(Account.telegram(user.id)) is not None:
        if command == "helper":
            await coordinator_command(update, context, args)
            raise ApplicationHandlerStop
        return
    if command == "helpers":
        await patient_helpers(update, context)
        raise ApplicationHandlerStop
    text = (update.message.text or "").strip() if update.message is not None and update.message.text else ""
    token = args[0] if command == "start" and args else text if looks_like_token(text) else None
    facts = context.caller_facts
    if not token and facts is not None and not facts.helper_row:
        return  # the update gate already looked: no helper row for this account, nothing to route
    try:
        helper_token = bool(token) and await family.is_helper_token(rt, token=token)
        # Any other link or code is enrolment's to answer, even from a helper (who it refuses).
        found, former = (None, None) if token else await family.helper_role(rt, account=Account.telegram(user.id))
    except Exception as error:  # database down: the feature handlers (and the emergency path) answer
        log.warning("event=helper_lookup_failed error=%s", type(error).__name__)
        return
    if helper_token:
        await begin(update, context, token)
        raise ApplicationHandlerStop
    if found is None and former is None:
        return
    if found is None:
        await _say(update, render.cut_off(Translator(former.locale, rt.settings.sites[0].tz)))
        raise ApplicationHandlerStop
    t = Translator(found.helper.locale, found.patient.timezone)
    if not rt.settings.helpers.enabled:
        await _say(update, render.switched_off(t))
        raise ApplicationHandlerStop
    rt.known_patients.remember(Account.telegram(user.id), KnownPatient(found.patient.site_id, found.helper.locale,
                                                     found.patient.timezone))
    if query is not None and data.startswith("s:"):
        return  # the symptom picker: its Send records the report as this helper's
    await _helper_update(update, context, found, t, command, text)
    raise ApplicationHandlerStop


async def _say(update: Update, text: str, reply_markup=None) -> None:
    if update.callback_query is not None:
        await answer_quietly(update.callback_query, text[:190], show_alert=True)
    elif update.effective_message is not None:
        await update.effective_message.reply_text(text, reply_markup=as_markup(reply_markup))


async def _helper_update(update: Update, context: BotContext, found: HelperView, t: Translator,
                         command: str | None, text: str) -> None:
    rt = runtime(context)
    site = rt.settings.site(found.patient.site_id)
    if update.callback_query is not None:  # a button that is not a helper's
        await answer_quietly(update.callback_query, t._("This button is not for you."), show_alert=True)
    elif command == "status" or text in _menu_texts(lambda t: t._("📋 Their status")):
        await _status(update, context, found, t)
    elif command == "report" or text in _menu_texts(lambda t: t._("⚠ Report a symptom for them")):
        await symptoms.open_picker(update, t, rt.settings, found.patient.site_id)
    elif command is None and text and await symptom_service.pending_note(rt, account=Account.telegram(update.effective_user.id)):
        await symptoms.on_note(update, context)
    elif command is not None:
        await update.effective_message.reply_text(render.help_text(t, site), reply_markup=as_markup(render.helper_menu(t)))
    elif update.effective_message is not None:  # not relayed (the helper is told so); danger words get the advice
        level, _ = message_service.classify(rt, kind_and_text(update.effective_message)[1])
        if level is TriageLevel.EMERGENCY:
            await update.effective_message.reply_text(emergency_advice(t, site))
        await update.effective_message.reply_text(render.not_read(t, site), reply_markup=as_markup(render.helper_menu(t)))


async def _status(update: Update, context: BotContext, found: HelperView, t: Translator) -> None:
    rt = runtime(context)
    view = await patients.status_view(rt, patient=found.patient)
    text, _ = status_text(t, rt.settings, course=view.course, doses=view.doses, today=view.today,
                          next_due=view.next_due if found.patient.status == PatientStatus.ACTIVE else None, paused=False)
    lines = [render.status_header(t), text] + ([render.paused_line(t)] if found.patient.status == PatientStatus.PAUSED else [])
    await update.effective_message.reply_text("\n".join(lines), reply_markup=as_markup(render.helper_menu(t)))


# --- the patient's /helpers ---------------------------------------------------------------

async def patient_helpers(update: Update, context: BotContext) -> None:
    rt = runtime(context)
    patient = await context.patient()
    t = translator_for(update, context, patient)
    if not rt.settings.helpers.enabled:
        await update.effective_message.reply_text(render.unavailable(t))
        return
    if patient is None:
        await update.effective_message.reply_text(
            t._("Please open the invitation link from your study nurse, or send me the invitation code."))
        return
    await _show_patient_screen(update, rt, t, patient)


async def _show_patient_screen(update: Update, rt, t: Translator, patient: Patient, *, edit: bool = False) -> None:
    patient, helpers = await family.list_for(rt, patient=patient)
    text, keyboard = render.patient_screen(t, rt.settings, consented=patient.helper_consent_at is not None,
                                           helpers=helpers)
    if edit:
        await update.callback_query.edit_message_text(text, reply_markup=as_markup(keyboard))
    else:
        await update.effective_message.reply_text(text, reply_markup=as_markup(keyboard))


async def on_callback(update: Update, context: BotContext, args: list[str]) -> None:
    rt = runtime(context)
    query = update.callback_query
    action, value = (args + [""])[:2]
    if action in (render.LANG, render.JOIN, render.NOT_NOW):
        await _joining(update, context, action, value)
        return
    patient = await context.patient()
    t = translator_for(update, context, patient)
    if patient is None:
        await answer_quietly(query, t._("This button is not for you."), show_alert=True)
        return
    try:
        if action == render.CONSENT:
            await family.set_consent(rt, patient=patient, consent=True, update_id=update.update_id)
        elif action == render.WITHDRAW:
            await family.set_consent(rt, patient=patient, consent=False, update_id=update.update_id)
            await answer_quietly(query)
            await query.edit_message_text(render.withdrawn(t))
            return
        elif action == render.REMOVE and value.isdigit():
            helper = await family.remove_by_patient(rt, patient=patient, helper_row_id=int(value),
                                                    update_id=update.update_id)
            await answer_quietly(query, render.removed(t, helper.helper_id), show_alert=True)
        elif action == render.INVITE:
            issued = await family.invite_by_patient(rt, patient=patient, update_id=update.update_id)
            await answer_quietly(query)
            await update.effective_message.reply_text(render.invitation_for_patient(t, issued.link, issued.expires_at))
            return
        else:
            await answer_quietly(query, t._("This button is no longer valid."), show_alert=True)
            return
    except HelperRefused as refused:
        await answer_quietly(query, render.refusal(t, refused.code)[:190], show_alert=True)
        return
    await answer_quietly(query)
    await _show_patient_screen(update, rt, t, patient, edit=True)


# --- a helper joins -----------------------------------------------------------------------

async def begin(update: Update, context: BotContext, token: str) -> None:
    rt = runtime(context)
    t = translator_for(update, context)
    try:
        await family.start_joining(rt, account=Account.telegram(update.effective_user.id), token=token, locale=t.locale,
                                   update_id=update.update_id)
    except (HelperRefused, EnrolmentRefused) as refused:
        await update.effective_message.reply_text(render.refusal(t, refused.code))
        return
    text, keyboard = render.language_question(t)
    await update.effective_message.reply_text(text, reply_markup=as_markup(keyboard))


async def _joining(update: Update, context: BotContext, action: str, value: str) -> None:
    rt = runtime(context)
    query = update.callback_query
    user_id = update.effective_user.id
    state = await family.pending_join(rt, account=Account.telegram(user_id))
    t = Translator(state["locale"], rt.settings.site(state["site"]).tz) if state else translator_for(update, context)
    if state is None:
        await answer_quietly(query, render.refusal(t, "expired"), show_alert=True)
        return
    await answer_quietly(query)
    if action == render.LANG and value in SUPPORTED:
        await family.choose_language(rt, account=Account.telegram(user_id), locale=value)
        text, keyboard = render.explanation(Translator(value, t.tz))
        await query.edit_message_text(text, reply_markup=as_markup(keyboard))
    elif action == render.NOT_NOW:
        await family.decline(rt, account=Account.telegram(user_id), update_id=update.update_id)
        await query.edit_message_text(t._("You have not joined, and nothing was saved about you. If you change "
                                          "your mind, open your link again."))
    elif action == render.JOIN:
        try:
            joined = await family.join(rt, account=Account.telegram(user_id), address=str(update.effective_chat.id),
                                       update_id=update.update_id)
        except (HelperRefused, EnrolmentRefused) as refused:
            await query.edit_message_text(render.refusal(t, refused.code))
            return
        await query.edit_message_text("✅ " + t._("You have joined as helper {helper}.", helper=joined.helper.helper_id))
        await update.effective_message.reply_text(render.welcome(t, rt.settings.site(joined.patient.site_id)),
                                                  reply_markup=as_markup(render.helper_menu(t)))


# --- coordinators: /helper SUBJECT, /helper remove HELPER-ID REASON -------------------------

async def coordinator_command(update: Update, context: BotContext, args: list[str]) -> None:
    if not (found := await require_coordinator(update, context, "helper")):
        return
    actor, t = found
    rt = runtime(context)
    if not rt.settings.helpers.enabled:
        await tell(update, render.unavailable(t))
        return
    try:
        if len(args) >= 3 and args[0].lower() == "remove":
            done = await guarded(update, t, None, lambda: family.remove_by_coordinator(
                rt, actor, helper_id=args[1], reason=" ".join(args[2:]), update_id=update.update_id))
            if done is not REFUSED:
                await tell(update, render.coordinator_removed(t, done[0].helper_id, done[1].subject_id))
            return
        if len(args) != 1 or args[0].lower() == "remove":
            await tell(update, render.coordinator_usage(t, example_subject(rt, actor)))
            return
        done = await guarded(update, t, args[0].upper(), lambda: family.invite_by_coordinator(
            rt, actor, subject_id=args[0], update_id=update.update_id))
    except HelperRefused as refused:
        await tell(update, render.refusal(t, refused.code))
        return
    if done is REFUSED:
        return
    issued, patient = done
    site = rt.settings.site(issued.site_id)
    card = invitation_card_png(issued.link, site=site, subject_id=issued.subject_id, expires_at=issued.expires_at)
    await update.effective_message.reply_photo(card, caption=render.coordinator_invited(
        t, patient.subject_id, patient.helper_consent_at is not None, issued.link, issued.expires_at))


def register(application: Application) -> None:
    application.add_handler(TypeHandler(Update, route), group=GROUP)
