"""Patient commands: /start /status /help /language /time /stop, menu buttons."""

from __future__ import annotations

import logging
from datetime import date
from zoneinfo import ZoneInfo

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler

from bot.domain.dose import PauseOrigin
from bot.domain.status import PatientStatus
from bot.channels.telegram.keyboards import as_markup
from bot.channels.port import Action, Account
from bot.render.actions import buttons
from bot.channels.telegram.handlers import enrol, messages, symptoms
from bot.channels.telegram.handlers.common import answer_quietly, runtime, translator_for
from bot.channels.telegram.handlers.context import BotContext
from bot.i18n import SUPPORTED, Translator
from bot.render import callbacks as cb
from bot.render import patient as render
from bot.services import courses, dialogs, patients
from bot.services.courses import CourseRefused
from bot.services.queries import withdrawn_patient_by_account

log = logging.getLogger("adherence.commands")


def _not_enrolled(t: Translator) -> str:
    return t._("Please open the invitation link from your study nurse, or send me the invitation code.")


async def _enrolled(update: Update, context: BotContext):
    """(patient, translator); patient is None after telling a stranger how to enrol."""
    patient = await context.patient()
    t = translator_for(update, context, patient)
    if patient is None:
        await tell_not_enrolled(update, context)
    return patient, t


async def _stranger_text(update: Update, context: BotContext) -> str:
    """How to enrol; or, for a patient the study team withdrew, that they left the reminders."""
    rt = runtime(context)
    async with rt.session() as session:
        left = await withdrawn_patient_by_account(session, account=Account.telegram(update.effective_user.id))
    if left is None:
        return _not_enrolled(translator_for(update, context))
    t = translator_for(update, context, left)
    return "\n".join([t._("You have left the study's reminders, so this bot no longer sends you any."),
                      t._("Your messages here are not read by the study team."),
                      t._("For questions, please call your study team: {phone}",
                          phone=rt.settings.site(left.site_id).phone)])


async def start(update: Update, context: BotContext) -> None:
    if context.args:
        await enrol.begin(update, context, context.args[0])
        return
    patient, t = await _enrolled(update, context)
    if patient is None:
        return
    if patient.status == PatientStatus.PAUSED:
        rt = runtime(context)
        try:
            await patients.set_paused(rt, patient=patient, paused=False, actor_kind="patient",
                                      actor_id=patient.subject_id, update_id=update.update_id)
        except patients.HoldRefused:
            await update.effective_message.reply_text(render.team_hold(t, rt.settings, rt.settings.site(patient.site_id)),
                                                      reply_markup=as_markup(render.main_menu(t)))
            return
        await update.effective_message.reply_text(t._("Reminders are on again."), reply_markup=as_markup(render.main_menu(t)))
        return
    await update.effective_message.reply_text(t._("Welcome back. Use the buttons below."), reply_markup=as_markup(render.main_menu(t)))


async def help_command(update: Update, context: BotContext) -> None:
    patient = await context.patient()
    t = translator_for(update, context, patient)
    lines = [
        t._("Each course day you get one reminder. Tap ✅ Taken once you have taken your tablets."),
        "/status — " + t._("this course at a glance"),
        "/report — " + t._("report a symptom"),
        "/time — " + t._("change the reminder time"),
        "/language — " + t._("中文 / English"),
        "/stop — " + t._("pause reminders"),
    ]
    if runtime(context).settings.helpers.enabled:
        lines.append("/helpers — " + t._("a family member who helps you"))
    if patient is not None:
        lines.append(t._("Study site phone: {phone}", phone=runtime(context).settings.site(patient.site_id).phone))
        lines.append(render.how_to_take(t, runtime(context).settings))
    await update.effective_message.reply_text("\n".join(lines))


async def status(update: Update, context: BotContext) -> None:
    rt = runtime(context)
    patient, t = await _enrolled(update, context)
    if patient is None:
        return
    view = await patients.status_view(rt, patient=patient)
    text, _ = render.status(t, rt.settings, course=view.course, doses=view.doses, today=view.today,
                            next_due=view.next_due, paused=patient.status == PatientStatus.PAUSED,
                            held=patient.status == PatientStatus.PAUSED and patient.pause_origin == PauseOrigin.TEAM)
    await update.effective_message.reply_text(text, reply_markup=as_markup(render.main_menu(t)))


async def language(update: Update, context: BotContext) -> None:
    t = translator_for(update, context, await context.patient())
    await update.effective_message.reply_text(t._("Choose your language."), reply_markup=as_markup(buttons(
        [[Action("中文", data=cb.menu("lang.zh_Hans")), Action("English", data=cb.menu("lang.en"))]])))


async def time_command(update: Update, context: BotContext) -> None:
    rt = runtime(context)
    patient, t = await _enrolled(update, context)
    if patient is None:
        return
    if context.args:  # "/time 07:30"
        await set_time(update, context, " ".join(context.args))
        return
    await dialogs.remember(rt, user=Account.telegram(update.effective_user.id).key, kind=dialogs.REMINDER_TIME,
                           payload={}, ttl=dialogs.REMINDER_TIME_TTL)
    choices = rt.settings.reminders.time_choices
    rows = [[Action(c, data=cb.menu("time." + c.replace(":", "."))) for c in choices[i:i + 2]]
            for i in range(0, len(choices), 2)]
    await update.effective_message.reply_text(
        t._("Your reminder is at {time}. Tap a new time, or type one like 07:30. It applies from the next day "
            "you have not answered yet.", time=patient.reminder_time), reply_markup=as_markup(buttons(rows)))


async def stop(update: Update, context: BotContext) -> None:
    patient, t = await _enrolled(update, context)
    if patient is None:
        return
    rt = runtime(context)
    if patient.status == PatientStatus.PAUSED and patient.pause_origin == PauseOrigin.TEAM:  # already held by the team: nothing to do
        await update.effective_message.reply_text(render.team_hold(t, rt.settings, rt.settings.site(patient.site_id)))
        return
    await patients.set_paused(rt, patient=patient, paused=True, actor_kind="patient",
                              actor_id=patient.subject_id, update_id=update.update_id)
    await update.effective_message.reply_text(
        t._("Reminders are paused and your study team has been told. Send /start to turn them on again."))


async def set_time(update: Update, context: BotContext, raw: str) -> None:
    rt = runtime(context)
    patient = await context.patient()
    t = translator_for(update, context, patient)
    value = enrol.parse_time_input(raw)
    if patient is None or value is None:
        await update.effective_message.reply_text(t._("Please send a time like 07:30 (hours:minutes, 24-hour clock)."))
        return
    await dialogs.forget(rt, user=Account.telegram(update.effective_user.id).key, kind=dialogs.REMINDER_TIME)
    changed = await patients.change_reminder_time(rt, patient=patient, reminder_time=value, update_id=update.update_id)
    await update.effective_message.reply_text(
        t._("Done: reminders at {time} from {date}.", time=value, date=t.date(changed)) if changed else
        t._("Done: reminders at {time}.", time=value))


async def on_menu(update: Update, context: BotContext) -> None:
    rt = runtime(context)
    item = context.match[1]
    query = update.callback_query
    await answer_quietly(query)  # a failed answer must not keep a patient from the symptom picker
    if item == "report":
        await symptoms.start(update, context)
    elif item.startswith("lang.") and item[5:] in SUPPORTED:
        patient = await context.patient()
        if patient is not None:
            patient = await patients.change_locale(rt, patient=patient, locale=item[5:], update_id=update.update_id)
            context.patient_changed(patient)
        else:  # a stranger's language choice; no dialog is touched
            await dialogs.remember(rt, user=Account.telegram(update.effective_user.id).key, kind=dialogs.LOCALE,
                                   payload={"locale": item[5:]}, ttl=dialogs.LOCALE_TTL)
            context.stranger_locale = item[5:]
        t = translator_for(update, context, patient)
        await query.edit_message_text(t._("Language set: English"))
        if patient is not None:
            await update.effective_message.reply_text(t._("Use the buttons below."), reply_markup=as_markup(render.main_menu(t)))
    elif item.startswith("chemo.") and item[6:].isdigit() and len(item) == 14:
        await chemo_confirmed(update, context, item[6:])
    elif item == "chemo_no":
        t = translator_for(update, context, await context.patient())
        await query.edit_message_text(t._("OK, nothing was changed."))
    elif item.startswith("time."):
        await set_time(update, context, item[5:].replace(".", ":"))


def menu_texts(key: str) -> list[str]:
    """The persistent menu's button texts in every language (a patient may switch language)."""
    texts = {"report": lambda t: t._("⚠ Report a symptom"), "status": lambda t: t._("📋 My status"),
             "chemo": lambda t: t._("💉 Chemo finished today")}
    return sorted({texts[key](Translator(locale)) for locale in SUPPORTED})


async def on_typed_time(update: Update, context: BotContext, state: dict, text: str) -> bool:
    """Typed text after /time asked for a new reminder time: taken only if it is a time."""
    if enrol.parse_time_input(text) is None:
        return False
    await set_time(update, context, text)
    return True


async def tell_not_enrolled(update: Update, context: BotContext) -> None:
    await update.effective_message.reply_text(await _stranger_text(update, context))


async def unknown_command(update: Update, context: BotContext) -> None:
    """A command the bot does not know (a typo, an old one): a short list, nothing changed."""
    patient = await context.patient()
    t = translator_for(update, context, patient)
    await update.effective_message.reply_text("\n".join([
        t._("Sorry, I do not know that command."),
        t._("Try /status, /report, /time, /language or /help."),
    ]), reply_markup=as_markup(render.main_menu(t) if patient is not None else None))


async def on_media(update: Update, context: BotContext) -> None:
    """Voice notes, photos, documents, stickers …: kept and relayed like text."""
    await messages.on_message(update, context, not_enrolled=tell_not_enrolled)


async def chemo_finished(update: Update, context: BotContext) -> None:
    """The menu's "chemo finished today": nothing is created before the patient confirms the dates."""
    rt = runtime(context)
    patient, t = await _enrolled(update, context)
    if patient is None:
        return
    today = rt.now().astimezone(ZoneInfo(patient.timezone)).date()
    text, markup = render.chemo_end_question(t, rt.settings, today)
    await update.effective_message.reply_text(text, reply_markup=as_markup(markup))


async def chemo_confirmed(update: Update, context: BotContext, raw_date: str) -> None:
    rt = runtime(context)
    patient, t = await _enrolled(update, context)
    query = update.callback_query
    if patient is None:
        return
    try:
        chemo_end = date(int(raw_date[:4]), int(raw_date[4:6]), int(raw_date[6:8]))
        course = await courses.patient_reported_chemo_end(rt, patient=patient, chemo_end=chemo_end,
                                                          update_id=update.update_id)
    except ValueError:
        await query.edit_message_text(t._("This button is no longer valid."))
        return
    except CourseRefused as refused:
        await query.edit_message_text(
            t._("This question has expired. If your chemotherapy finished today, tap the button again.")
            if refused.code == "stale" else
            t._("Thank you. This does not match the course your study team registered, so nothing was changed. "
                "Your study team has been told and will check the dates with you."))
        return
    await query.edit_message_text(
        t._("Thank you. Your course starts tomorrow ({date}); your study team will confirm it.",
            date=t.date(course.first_day)))


def handlers() -> list[BaseHandler]:
    return [CallbackQueryHandler(on_menu, pattern=cb.pattern("m", r"([A-Za-z0-9_.\-]+)"))]
