"""Enrolment: token → language → consent → reminder time → summary → enrolled.

The flow's progress lives in user_data: losing it on a restart costs the patient one more tap
on their link (the token is spent only at the very end), never data.
"""

from __future__ import annotations

from telegram import InlineKeyboardButton as Button
from telegram import InlineKeyboardMarkup as Keyboard
from telegram import Update
from telegram.ext import ContextTypes

from bot.config import parse_hhmm
from bot.domain.tokens import looks_like_token
from bot.handlers.common import current_patient, runtime, translator_for
from bot.i18n import Translator
from bot.render import callbacks as cb
from bot.render.patient import main_menu
from bot.services import enrolment
from bot.services.enrolment import EnrolmentRefused


def _refusal(t: Translator, code: str) -> str:
    if code == "throttled":
        return t._("Too many attempts. Please wait an hour, or ask your study nurse for help.")
    if code == "already_enrolled":
        return t._("You are already enrolled. Nothing has changed. Use the menu below.")
    return t._("This invitation code cannot be used. Please check it with your study nurse.")


async def begin(update: Update, context: ContextTypes.DEFAULT_TYPE, token: str) -> None:
    rt = runtime(context)
    user = update.effective_user
    if await current_patient(context, user.id) is not None and looks_like_token(token):
        t = translator_for(update, context, await current_patient(context, user.id))
        await update.effective_message.reply_text(_refusal(t, "already_enrolled"))
        return
    try:
        pending = await enrolment.check_token(rt, telegram_user_id=user.id, token=token, update_id=update.update_id)
    except EnrolmentRefused as refused:
        await update.effective_message.reply_text(_refusal(translator_for(update, context), refused.code))
        return
    context.user_data["enrol"] = {"token": token, "site": pending.site_id, "step": "language"}
    t = translator_for(update, context)
    preselected = t.locale
    rows = [[Button(("✓ " if preselected == "zh_Hans" else "") + "中文", callback_data=cb.enrol("lang", "zh_Hans")),
             Button(("✓ " if preselected == "en" else "") + "English", callback_data=cb.enrol("lang", "en"))]]
    await update.effective_message.reply_text(
        t._("Welcome to the {trial} study reminders. Please choose your language.", trial=rt.settings.trial.name),
        reply_markup=Keyboard(rows))


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


async def on_callback(update: Update, context: ContextTypes.DEFAULT_TYPE, step: str, value: str) -> None:
    rt = runtime(context)
    query = update.callback_query
    state = context.user_data.get("enrol")
    if not state:
        t = translator_for(update, context)
        await query.answer(t._("This step has expired. Please tap your invitation link again."), show_alert=True)
        return
    if step == "lang" and value in ("zh_Hans", "en"):
        state["locale"], state["step"] = value, "consent"
        t = translator_for(update, context)
        await query.answer()
        await query.edit_message_text(
            _consent_text(t, rt),
            reply_markup=Keyboard([[Button(t._("I agree"), callback_data=cb.enrol("consent", "yes")),
                                     Button(t._("I do not agree"), callback_data=cb.enrol("consent", "no"))]]))
    elif step == "consent" and value == "no":
        context.user_data.pop("enrol", None)
        t = translator_for(update, context)
        await enrolment.record_declined(rt, telegram_user_id=update.effective_user.id, update_id=update.update_id)
        await query.answer()
        await query.edit_message_text(t._("You have not been enrolled, and nothing was saved about you. "
                                          "If you change your mind, tap your invitation link again."))
    elif step == "consent" and value == "yes":
        state["step"] = "time"
        await query.answer()
        await ask_time(update, context, edit=True)
    elif step == "time":
        await query.answer()
        await choose_time(update, context, value)
    elif step == "confirm" and value == "yes" and state.get("time"):
        await finish(update, context)
    else:
        await query.answer()


async def ask_time(update: Update, context: ContextTypes.DEFAULT_TYPE, *, edit: bool) -> None:
    rt = runtime(context)
    t = translator_for(update, context)
    choices = rt.settings.reminders.time_choices
    rows = [[Button(c, callback_data=cb.enrol("time", c.replace(":", "."))) for c in choices[i:i + 2]]
            for i in range(0, len(choices), 2)]
    text = t._("What time should we remind you each day? Tap a time, or type another one like 07:30.")
    if edit:
        await update.callback_query.edit_message_text(text, reply_markup=Keyboard(rows))
    else:
        await update.effective_message.reply_text(text, reply_markup=Keyboard(rows))


def parse_time_input(text: str) -> str | None:
    text = text.strip().replace("：", ":").replace(".", ":")
    if len(text) == 4 and text[1] == ":":
        text = "0" + text
    try:
        parse_hhmm(text)
    except ValueError:
        return None
    return text


async def choose_time(update: Update, context: ContextTypes.DEFAULT_TYPE, raw: str) -> None:
    state = context.user_data["enrol"]
    t = translator_for(update, context)
    value = parse_time_input(raw)
    if value is None:
        await update.effective_message.reply_text(t._("Please send a time like 07:30 (hours:minutes, 24-hour clock)."))
        return
    state["time"], state["step"] = value, "confirm"
    rt = runtime(context)
    site = rt.settings.site(state["site"])
    summary = "\n".join([
        t._("Please check:"),
        t._("Language: {language}", language="中文" if t.is_zh else "English"),
        t._("Study site: {site}", site=site.name(t.locale)),
        t._("Daily reminder at {time}", time=value),
    ])
    await update.effective_message.reply_text(
        summary, reply_markup=Keyboard([[Button(t._("Confirm"), callback_data=cb.enrol("confirm", "yes"))]]))


async def finish(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    rt = runtime(context)
    query = update.callback_query
    state = context.user_data["enrol"]
    t = translator_for(update, context)
    try:
        await enrolment.complete(rt, telegram_user_id=update.effective_user.id, chat_id=update.effective_chat.id,
                                 token=state["token"], locale=state["locale"], reminder_time=state["time"],
                                 update_id=update.update_id)
    except EnrolmentRefused as refused:
        context.user_data.pop("enrol", None)
        await query.answer()
        await query.edit_message_text(_refusal(t, refused.code))
        return
    context.user_data.pop("enrol", None)
    await query.answer()
    await query.edit_message_text(t._("You are enrolled. Thank you!"))
    await update.effective_message.reply_text(
        t._("Your study team will register your course after your chemotherapy, and you will get the plan here. "
            "Use the buttons below at any time."), reply_markup=main_menu(t))
