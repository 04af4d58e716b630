"""Symptom reports, tap only: pick one or more symptoms by group, then Send.

The emergency path holds under any single fault (DESIGN.md §1):
- triage needs only the configuration, and the picker opens even when the database is down;
- the ticked symptoms live in the picker message itself (its ☑ marks), so a restart or a
  second process loses nothing, and the Send button carries the site id for the phone number;
- on Send, the emergency advice (a new message, first) and the save run side by side: neither
  waits for the other, a failed advice send is retried from the outbox, and the confirmation
  says "sent" only when the report is stored and a person on the team can be reached.
"""

from __future__ import annotations

import asyncio
import logging

from telegram import Message, Update
from telegram.error import TelegramError
from telegram.ext import BaseHandler, CallbackQueryHandler

from bot.channels.telegram.keyboards import as_markup
from bot.channels.port import Action, Actions, Account
from bot.render.actions import buttons
from bot.domain.triage import TriageLevel
from bot.channels.telegram.handlers.common import answer_quietly, fallback_translator, known_sites, runtime, translator_for
from bot.channels.telegram.handlers.context import BotContext
from bot.i18n import Translator
from bot.render import callbacks as cb
from bot.render.patient import emergency_advice, site_phones
from bot.services import symptoms
from bot.services.symptoms import ReportNotSaved, ReportResult

log = logging.getLogger("adherence.symptoms")
GROUP_ORDER = ("bleeding", "clot", "liver", "other")
DESCRIBE = "other_unwell"  # "Something else is wrong": the note prompt asks for a description
TICK = "☑ "


LEVEL_ORDER = ("emergency", "same_day", "log")
SHORT = {"zh": 7, "en": 15}  # labels up to this long share a row, two to a row


def _level_title(t: Translator, level: str) -> str:
    return {"emergency": "🚨 " + t._("Emergency signs"), "same_day": "⚠ " + t._("Tell the team today"),
            "log": "ℹ " + t._("Minor")}[level]


def _ordered(settings) -> list:
    """Emergency signs first, then same-day, then minor; within a level, by group."""
    return sorted(settings.triage.symptoms, key=lambda s: (LEVEL_ORDER.index(s.level), GROUP_ORDER.index(s.group)))


def _picker(t: Translator, settings, selected: list[str], site_id: str | None) -> tuple[str, Actions]:
    """Short labels on the buttons (two to a row where they fit), the full wording in the text;
    the ticks live in the buttons themselves (see _ticked), Send second-to-last, Cancel last."""
    lines = [t._("What is happening? Tap all that apply, then tap Send."), ""]
    rows: list[list[Action]] = []
    limit = SHORT["zh" if t.is_zh else "en"]
    for level in LEVEL_ORDER:
        items = [s for s in _ordered(settings) if s.level == level]
        if not items:
            continue
        lines.append(_level_title(t, level))
        colon = "：" if t.is_zh else ": "
        lines += [f"· {s.short(t.locale)}{colon}{s.label(t.locale)}" if s.short(t.locale) != s.label(t.locale)
                  else f"· {s.label(t.locale)}" for s in items]
        pending: list[Action] = []
        for s in items:
            button = Action((TICK if s.code in selected else "") + s.short(t.locale), data=cb.symptom(s.code))
            if len(s.short(t.locale)) > limit:  # its own row, in its place
                rows += [pending] if pending else []
                rows.append([button])
                pending = []
                continue
            pending.append(button)
            if len(pending) == 2:
                rows.append(pending)
                pending = []
        if pending:
            rows.append(pending)
    send = t._("📨 Send ({count})", count=len(selected)) if selected else t._("📨 Send")
    rows.append([Action(send, data=cb.symptom_send(site_id)),
                 Action(t._("Cancel"), data=cb.symptom("_cancel"))])
    return "\n".join(lines), buttons(rows)


def _ticked(message: Message | None, known: set[str]) -> list[str]:
    """The symptoms ticked on this picker, read from its own buttons."""
    markup = message.reply_markup if message is not None else None
    codes = []
    for row in (markup.inline_keyboard if markup else ()):
        for button in row:
            code = (button.callback_data or "")[2:]
            if code in known and (button.text or "").startswith(TICK):
                codes.append(code)
    return codes


async def _patient_or_none(context, user_id: int):
    """(patient, database answered). A database fault must not keep the picker from a patient."""
    try:
        return await context.patient(), True
    except Exception as error:
        log.warning("event=patient_lookup_failed error=%s", type(error).__name__)
        return None, False


async def start(update: Update, context: BotContext) -> None:
    rt = runtime(context)
    user_id = update.effective_user.id
    patient, answered = await _patient_or_none(context, user_id)
    t = translator_for(update, context, patient) if patient else fallback_translator(update, context)
    if patient is None and answered:
        await update.effective_message.reply_text(t._("Please enrol first with the invitation link from your study nurse."))
        return
    known = rt.known_patients.get(Account.telegram(user_id))
    site_id = patient.site_id if patient else (known.site_id if known else None)
    text, keyboard = _picker(t, rt.settings, [], site_id)
    await update.effective_message.reply_text(text, reply_markup=as_markup(keyboard))


async def open_picker(update: Update, t: Translator, settings, site_id: str) -> None:
    """The picker for someone already known (a family helper reporting on the patient's behalf)."""
    text, keyboard = _picker(t, settings, [], site_id)
    await update.effective_message.reply_text(text, reply_markup=as_markup(keyboard))


async def on_callback(update: Update, context: BotContext) -> None:
    """A tap on the picker: a symptom (ticked or unticked), Cancel, or Send ("s:_send:<site>")."""
    rt = runtime(context)
    code, site_hint = context.match[1], context.match.groupdict().get("site")
    query = update.callback_query
    known = rt.settings.triage.by_code()
    selected = _ticked(query.message, set(known))
    if code == "_send":
        await _send(update, context, selected, site_hint)
        return
    t = fallback_translator(update, context)
    await answer_quietly(query)
    if code == "_cancel":
        await query.edit_message_text(t._("Cancelled. Nothing was sent."))
    elif code in known:
        selected.remove(code) if code in selected else selected.append(code)
        text, keyboard = _picker(t, rt.settings, selected, _send_site(query.message))
        await query.edit_message_text(text, reply_markup=as_markup(keyboard))


def _send_site(message: Message | None) -> str | None:
    markup = message.reply_markup if message is not None else None
    for row in (markup.inline_keyboard if markup else ()):
        for button in row:
            parsed = cb.parse(button.callback_data)
            if parsed and parsed.kind == "s" and parsed.args[:1] == ("_send",) and len(parsed.args) == 2:
                return parsed.args[1]
    return None


async def _send(update: Update, context: BotContext, codes: list[str], site_hint: str | None) -> None:
    rt = runtime(context)
    query = update.callback_query
    t = fallback_translator(update, context)
    if not codes:
        await answer_quietly(query, t._("Please tap at least one symptom first."), show_alert=True)
        return
    level = symptoms.classify(rt.settings, codes)
    sites = known_sites(context, update.effective_user.id, site_hint)
    advice = asyncio.create_task(_show_advice(update, t, sites)) if level is TriageLevel.EMERGENCY else None
    save = asyncio.create_task(_save(rt, update, codes))
    await answer_quietly(query)
    saved = await save
    shown = await advice if advice is not None else None
    if saved is not None and saved.advice_row_id is not None:
        await _settle_advice(rt, saved.advice_row_id, shown)
    if saved is not None:
        sites = [rt.settings.site(saved.site_id)]
    await _confirm(query, _confirmation(t, level, saved, sites, describe=DESCRIBE in codes))


async def _show_advice(update: Update, t: Translator, sites) -> Message | Exception:
    try:
        return await update.effective_message.reply_text(emergency_advice(t, sites))
    except TelegramError as error:
        log.warning("event=advice_send_failed error=%s", type(error).__name__)
        return error


async def _save(rt, update: Update, codes: list[str]) -> ReportResult | None:
    try:
        return await symptoms.report(rt, account=Account.telegram(update.effective_user.id), codes=codes,
                                     update_id=update.update_id)
    except ReportNotSaved as error:
        log.error("event=symptom_report_not_saved error=%s", error)
        return None


async def _settle_advice(rt, row_id: int, shown: Message | Exception | None) -> None:
    """The advice row is the retry: done if the patient has the advice, due now if not."""
    try:
        if isinstance(shown, Message):
            await symptoms.advice_delivered(rt, row_id=row_id, message_id=shown.message_id)
        else:
            await symptoms.advice_failed(rt, row_id=row_id, error=type(shown).__name__)
    except Exception as error:  # the row stays due a little later: the courier sends it then
        log.warning("event=advice_settle_failed error=%s", type(error).__name__)


def _confirmation(t: Translator, level: TriageLevel, saved: ReportResult | None, sites, *,
                  describe: bool = False) -> str:
    phones = site_phones(t, sites)
    if saved is None:
        return "❗ " + t._("Your report was NOT received because of a technical problem.") + "\n" + \
            t._("If this is an emergency, call 120 now.") + "\n" + phones
    if not saved.team_reached and level is not TriageLevel.LOG:
        return "❗ " + t._("Your report was saved, but we could not reach your study team. Please phone them now.") \
            + "\n" + t._("If this is an emergency, call 120 now.") + "\n" + phones
    if saved.throttled:
        return t._("You have sent several reports in the last hour. Your study team has all of them. If something "
                   "new happens or it gets worse, call 120 or phone the site.") + "\n" + phones
    if level is TriageLevel.EMERGENCY:
        text = t._("Your report was sent to your study team. Still call 120 or go to the emergency department now.")
    elif level is TriageLevel.SAME_DAY and saved.team_today:
        text = t._("Your report was sent. Your study team will contact you today. "
                   "If it gets worse, call 120 or phone the site: {phone}", phone=sites[0].phone)
    elif level is TriageLevel.SAME_DAY:  # after working hours: say when, never a false "today"
        text = t._("Your report was sent. Your study team will contact you on {day}. "
                   "If it gets worse, call 120 or phone the site: {phone}", day=t.date(saved.team_from),
                   phone=sites[0].phone)
    else:
        text = t._("Thank you, your report was saved. Keep watching for bleeding that will not stop, "
                   "black stool, blood in urine, or new large bruises, and report them here.")
    prompt = t._("Please describe it in a few words: type a message now.") if describe else \
        t._("If you want, type a short note now (optional).")
    return "✅ " + text + "\n\n" + prompt


async def _confirm(query, text: str) -> None:
    """Replace the picker with the outcome; if Telegram refuses the edit, send it as a new message."""
    try:
        await query.edit_message_text(text)
        return
    except TelegramError as error:
        log.warning("event=report_confirmation_edit_failed error=%s", type(error).__name__)
    try:
        await query.message.reply_text(text)
    except TelegramError as error:
        log.error("event=report_confirmation_failed error=%s", type(error).__name__)


async def on_typed(update: Update, context: BotContext, state: dict, text: str) -> bool:
    """Typed text while the note prompt of a report is open (its dialog, symptoms.NOTE_DIALOG)."""
    if text.startswith("/") or await context.patient() is None:
        return False
    await on_note(update, context)
    return True


async def on_note(update: Update, context: BotContext) -> None:
    """The patient's text while a note prompt is open."""
    rt = runtime(context)
    patient = await context.patient()
    t = translator_for(update, context, patient)
    saved = await symptoms.add_note(rt, account=Account.telegram(update.effective_user.id),
                                    note=update.effective_message.text or "", update_id=update.update_id)
    await update.effective_message.reply_text(
        t._("Your note was added to your report.") if saved else t._("Please use the buttons. For help, send /help."))


def handlers() -> list[BaseHandler]:
    return [CallbackQueryHandler(on_callback, pattern=cb.pattern("s", cb.ARG)),
            CallbackQueryHandler(on_callback, pattern=cb.pattern("s", "(_send)", r"(?P<site>[A-Za-z0-9_.\-]*)"))]
