"""Enrolment: token → language → consent → reminder time → summary → enrolled.

The dialog is a server-side state machine (bot.domain.enrolment) kept in the database
(bot.services.enrolment, dialog_state): a restart loses nothing, and a button out of order or
without a dialog is refused, audited and changes nothing.
"""

from __future__ import annotations

import logging

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import BaseHandler, CallbackQueryHandler

from bot.domain.dose import PauseOrigin
from bot.domain.status import PatientStatus
from bot.channels.telegram.keyboards import as_markup
from bot.channels.port import Action, Actions, Account
from bot.render.actions import buttons
from bot.config import parse_hhmm
from bot.domain.tokens import looks_like_token
from bot.channels.telegram.handlers.common import runtime, translator_for
from bot.domain.enrolment import EnrolStep, StepRefused
from bot.channels.telegram.handlers.context import BotContext
from bot.i18n import SUPPORTED, Translator
from bot.render import callbacks as cb
from bot.render.patient import course_plan, main_menu, status
from bot.services import dialogs, enrolment, patients
from bot.services.enrolment import EnrolmentRefused

log = logging.getLogger("adherence.enrol")


def _refusal(t: Translator, code: str) -> str:
    if code == "throttled":
        return t._("Too many attempts. Please wait an hour, or ask your study nurse for help.")
    if code == "already_enrolled":
        return t._("You are already enrolled. Nothing has changed. Use the menu below.")
    if code == "is_helper":
        return t._("This account is already a family helper for a patient in this study, so it cannot be "
                   "enrolled as a patient too. Nothing has changed. Please ask your study nurse.")
    if code == "is_staff":
        return t._("This account belongs to the study team, so it cannot be enrolled as a patient. "
                   "Nothing has changed. Use the patient's own phone.")
    return t._("This invitation code cannot be used. Please check it with your study nurse.")


def _dialog_translator(update: Update, context: BotContext, state: dict | None) -> Translator:
    """The dialog's chosen language (kept in the database), else the usual guess."""
    if state and state.get("locale"):
        rt = runtime(context)
        return Translator(state["locale"], rt.settings.site(state["site"]).tz)
    return translator_for(update, context)


async def begin(update: Update, context: BotContext, token: str) -> None:
    rt = runtime(context)
    user = update.effective_user
    if await context.patient() is not None and looks_like_token(token):
        t = translator_for(update, context, await context.patient())
        await update.effective_message.reply_text(_refusal(t, "already_enrolled"))
        return
    t = translator_for(update, context)
    try:
        await enrolment.start_dialog(rt, account=Account.telegram(user.id), token=token, locale=t.locale,
                                     update_id=update.update_id)
    except EnrolmentRefused as refused:
        await update.effective_message.reply_text(_refusal(t, refused.code))
        return
    text, keyboard = _language_question(t, rt)
    await update.effective_message.reply_text(text, reply_markup=as_markup(keyboard))


def _language_question(t: Translator, rt) -> tuple[str, Actions]:
    rows = [[Action(("✓ " if t.locale == "zh_Hans" else "") + "中文", data=cb.enrol("lang", "zh_Hans")),
             Action(("✓ " if t.locale == "en" else "") + "English", data=cb.enrol("lang", "en"))]]
    return (t._("Welcome to the {trial} study reminders. Please choose your language.", trial=rt.settings.trial.name),
            buttons(rows))


def _consent_text(t: Translator, rt) -> str:
    return "\n".join([
        t._("Before we start, please read this."),
        "• " + t._("We keep: your study subject number, your answers about your study tablets, the symptoms you "
                   "report, and the times of these messages. We never ask for your name, phone number or diagnosis."),
        "• " + t._("Messages pass through Telegram's servers, which are outside China."),
        "• " + t._("Your study team sees your answers. This bot is not an emergency service."),
        "• " + t._("You can stop at any time with /stop, or withdraw by telling your study nurse."),
        t._("Consent version: {version}", version=rt.settings.trial.consent_version),
    ])


def _expired(t: Translator) -> str:
    return t._("This step has expired. Please tap your invitation link again.")


async def on_callback(update: Update, context: BotContext) -> None:
    """One enrolment button. The service accepts it only at the dialog's current step."""
    step, value = context.match.groups()
    if step == "lang" and value not in SUPPORTED:
        value = ""
    if step == "time":
        value = parse_time_input(value) or ""
    if step == "change" and value not in ("time", "lang"):
        value = ""
    await _advance(update, context, step, value)


async def _advance(update: Update, context: BotContext, step: str, value: str) -> None:
    rt = runtime(context)
    query = update.callback_query
    user = update.effective_user
    before = await enrolment.pending_dialog(rt, account=Account.telegram(user.id))
    try:
        done = await enrolment.advance_dialog(rt, account=Account.telegram(user.id), address=str(update.effective_chat.id),
                                              received=step, value=value, update_id=update.update_id)
    except StepRefused as refused:
        t = _dialog_translator(update, context, before)
        text = _expired(t) if refused.code == "expired" or before is None else \
            t._("Please use the buttons of the latest message, in order. Nothing was changed.")
        if query is not None:
            await query.answer(text, show_alert=True)
        else:
            await update.effective_message.reply_text(text)
        return
    except EnrolmentRefused as refused:
        t = _dialog_translator(update, context, before)
        if query is not None:
            await query.answer()
            await query.edit_message_text(_refusal(t, refused.code))
        else:
            await update.effective_message.reply_text(_refusal(t, refused.code))
        return
    t = _dialog_translator(update, context, done.state)
    if query is not None:
        await query.answer()
    if done.step is EnrolStep.CONSENT:
        # Until enrolment ends, the chosen language is the caller's language everywhere.
        await dialogs.remember(rt, user=Account.telegram(user.id).key, kind=dialogs.LOCALE,
                               payload={"locale": done.state["locale"]}, ttl=dialogs.LOCALE_TTL)
        await query.edit_message_text(
            _consent_text(t, rt),
            reply_markup=as_markup(buttons([[Action(t._("I agree"), data=cb.enrol("consent", "yes")),
                                     Action(t._("I do not agree"), data=cb.enrol("consent", "no"))]])))
    elif done.step is EnrolStep.DECLINED:
        await query.edit_message_text(t._("You have not been enrolled, and nothing was saved about you. "
                                          "If you change your mind, tap your invitation link again."))
    elif done.step is EnrolStep.LANGUAGE:  # "Change language" on the summary
        text, keyboard = _language_question(t, rt)
        await query.edit_message_text(text, reply_markup=as_markup(keyboard))
    elif done.step is EnrolStep.TIME:
        await ask_time(update, context, t, edit=True)
    elif done.step is EnrolStep.CONFIRM:
        await _close_time_question(update, context, t, done.state["time"], typed=query is None or step != "time")
        await _summary(update, context, t, done.state)
    elif done.step is EnrolStep.DONE:
        await _finished(update, context, t, done)


async def ask_time(update: Update, context: BotContext, t: Translator, *, edit: bool) -> None:
    rt = runtime(context)
    choices = rt.settings.reminders.time_choices
    rows = [[Action(c, data=cb.enrol("time", c.replace(":", "."))) for c in choices[i:i + 2]]
            for i in range(0, len(choices), 2)]
    text = t._("What time should we remind you each day? Tap a time, or type another one like 07:30.")
    if edit:
        asked = await update.callback_query.edit_message_text(text, reply_markup=as_markup(buttons(rows)))
    else:
        asked = await update.effective_message.reply_text(text, reply_markup=as_markup(buttons(rows)))
    if hasattr(asked, "message_id"):
        await dialogs.remember(rt, user=Account.telegram(update.effective_user.id).key, kind=dialogs.TIME_QUESTION,
                               payload={"chat": asked.chat_id, "message": asked.message_id},
                               ttl=dialogs.TIME_QUESTION_TTL)


async def _close_time_question(update: Update, context: BotContext, t: Translator, time: str, *,
                               typed: bool) -> None:
    """The time question keeps the answer, not its buttons (tapped, or typed as text). Cosmetic:
    a stale time button still works at the summary."""
    where = (await dialogs.take(runtime(context), user=Account.telegram(update.effective_user.id).key,
                                kind=dialogs.TIME_QUESTION)).state
    text = t._("Daily reminder at {time}", time=time) + " ✓"
    try:
        if not typed:
            await update.callback_query.edit_message_text(text)
        elif where:
            await context.bot.edit_message_text(text, chat_id=where["chat"], message_id=where["message"])
    except TelegramError as error:
        log.info("event=time_question_not_closed error=%s", type(error).__name__)


def parse_time_input(text: str) -> str | None:
    text = text.strip().replace("：", ":").replace(".", ":")
    if len(text) == 4 and text[1] == ":":
        text = "0" + text
    try:
        parse_hhmm(text)
    except ValueError:
        return None
    return text


async def on_typed(update: Update, context: BotContext, state: dict, text: str) -> bool:
    """Typed text while the enrolment dialog is open: a reminder time at the time step, or a new
    time typed at the summary. False: not for this dialog (or the caller is already a patient)."""
    at_time = state.get("step") == EnrolStep.TIME.value
    if (at_time or (state.get("step") == EnrolStep.CONFIRM.value and parse_time_input(text))) \
            and await context.patient() is None:
        await choose_time(update, context, text)
        return True
    return False


async def choose_time(update: Update, context: BotContext, raw: str) -> None:
    """A typed reminder time during enrolment (the dialog is at its time step)."""
    value = parse_time_input(raw)
    if value is None:
        state = await enrolment.pending_dialog(runtime(context), account=Account.telegram(update.effective_user.id))
        t = _dialog_translator(update, context, state)
        await update.effective_message.reply_text(t._("Please send a time like 07:30 (hours:minutes, 24-hour clock)."))
        return
    await _advance(update, context, "time", value)


async def _summary(update: Update, context: BotContext, t: Translator, state: dict) -> None:
    rt = runtime(context)
    keyboard = buttons([[Action("✅ " + t._("Confirm"), data=cb.enrol("confirm", "yes"))],
                         [Action(t._("Change time"), data=cb.enrol("change", "time")),
                          Action(t._("Change language"), data=cb.enrol("change", "lang"))]])
    await update.effective_message.reply_text(t._("Please check:") + "\n" + _details(t, rt, state),
                                              reply_markup=as_markup(keyboard))


def _details(t: Translator, rt, state: dict) -> str:
    site = rt.settings.site(state["site"])
    return "\n".join([
        t._("Language: {language}", language="中文" if t.is_zh else "English"),
        t._("Study site: {site}", site=site.name(t.locale)),
        t._("Daily reminder at {time}", time=state["time"]),
        t._("Consent version: {version}", version=state.get("consent_version", "")),
    ])


async def _finished(update: Update, context: BotContext, t: Translator, done) -> None:
    rt = runtime(context)  # the summary becomes the record of what was confirmed, without buttons
    await update.callback_query.edit_message_text("✅ " + t._("You are enrolled. Thank you!") + "\n"
                                                  + _details(t, rt, done.state))
    if done.state.get("purpose") == "rebind":
        await _welcome_back(update, rt, t, done.patient)
        return
    await update.effective_message.reply_text(
        t._("Your study team will register your course after your chemotherapy, and you will get the plan here. "
            "Use the buttons below at any time."), reply_markup=as_markup(main_menu(t)))


async def _welcome_back(update: Update, rt, t: Translator, patient) -> None:
    """A rebound phone picks up the story: the running course's plan and today's state."""
    view = await patients.status_view(rt, patient=patient)
    if view.course is None:
        await update.effective_message.reply_text(
            t._("Welcome back. Your study team will register your next course after your chemotherapy."),
            reply_markup=as_markup(main_menu(t)))
        return
    plan, _ = course_plan(t, rt.settings, view.course, patient.reminder_time)
    status_text, _ = status(t, rt.settings, course=view.course, doses=view.doses, today=view.today,
                            next_due=view.next_due, paused=patient.status == PatientStatus.PAUSED,
                            held=patient.status == PatientStatus.PAUSED and patient.pause_origin == PauseOrigin.TEAM)
    await update.effective_message.reply_text(t._("Welcome back. This phone now gets your reminders.") + "\n\n"
                                              + plan)
    await update.effective_message.reply_text(status_text, reply_markup=as_markup(main_menu(t)))


def handlers() -> list[BaseHandler]:
    return [CallbackQueryHandler(on_callback, pattern=cb.pattern("e", cb.ARG, cb.ARG))]
