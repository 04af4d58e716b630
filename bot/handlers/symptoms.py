"""Symptom reports, tap only: pick one or more symptoms by group, then Send.

Emergency advice is computed before saving and always shown first; the confirmation says
"sent" only if the report is in the database.
"""

from __future__ import annotations

from telegram import InlineKeyboardButton as Button
from telegram import InlineKeyboardMarkup as Keyboard
from telegram import Update
from telegram.ext import ContextTypes

from bot.domain.triage import TriageLevel
from bot.handlers.common import current_patient, runtime, translator_for
from bot.i18n import Translator
from bot.render import callbacks as cb
from bot.render.patient import emergency_advice
from bot.services import symptoms
from bot.services.symptoms import ReportNotSaved

GROUP_ORDER = ("bleeding", "clot", "liver", "other")


def _group_title(t: Translator, group: str) -> str:
    return {"bleeding": t._("Bleeding"), "clot": t._("Clot or stroke warning signs"),
            "liver": t._("Liver warning signs"), "other": t._("Other")}[group]


def _picker(t: Translator, settings, selected: list[str]) -> tuple[str, Keyboard]:
    lines = [t._("What is happening? Tap all that apply, then tap Send.")]
    rows = []
    for group in GROUP_ORDER:
        items = [s for s in settings.triage.symptoms if s.group == group]
        if not items:
            continue
        lines.append(f"— {_group_title(t, group)}")
        for s in items:
            mark = "☑ " if s.code in selected else ""
            rows.append([Button(mark + s.label(t.locale), callback_data=cb.symptom(s.code))])
    rows.append([Button(t._("📨 Send"), callback_data=cb.symptom("_send")),
                 Button(t._("Cancel"), callback_data=cb.symptom("_cancel"))])
    return "\n".join(lines), Keyboard(rows)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    patient = await current_patient(context, update.effective_user.id)
    t = translator_for(update, context, patient)
    if patient is None:
        await update.effective_message.reply_text(t._("Please enrol first with the invitation link from your study nurse."))
        return
    context.user_data["symptoms"] = []
    text, keyboard = _picker(t, runtime(context).settings, [])
    await update.effective_message.reply_text(text, reply_markup=keyboard)


async def on_callback(update: Update, context: ContextTypes.DEFAULT_TYPE, code: str) -> None:
    rt = runtime(context)
    query = update.callback_query
    patient = await current_patient(context, update.effective_user.id)
    t = translator_for(update, context, patient)
    selected = context.user_data.setdefault("symptoms", [])
    known = rt.settings.triage.by_code()
    if patient is None:
        await query.answer(t._("Please enrol first with the invitation link from your study nurse."), show_alert=True)
    elif code == "_cancel":
        context.user_data.pop("symptoms", None)
        await query.answer()
        await query.edit_message_text(t._("Cancelled. Nothing was sent."))
    elif code == "_send":
        await _send(update, context, t, list(selected))
    elif code in known:
        selected.remove(code) if code in selected else selected.append(code)
        await query.answer()
        text, keyboard = _picker(t, rt.settings, selected)
        await query.edit_message_text(text, reply_markup=keyboard)
    else:
        await query.answer()


async def _send(update: Update, context: ContextTypes.DEFAULT_TYPE, t: Translator, codes: list[str]) -> None:
    rt = runtime(context)
    query = update.callback_query
    if not codes:
        await query.answer(t._("Please tap at least one symptom first."), show_alert=True)
        return
    patient = await current_patient(context, update.effective_user.id)
    site = rt.settings.site(patient.site_id)
    level = symptoms.classify(rt.settings, codes)
    await query.answer()
    if level is TriageLevel.EMERGENCY:  # first, before anything else
        await update.effective_message.reply_text(emergency_advice(t, site))
    try:
        saved = await symptoms.report(rt, telegram_user_id=update.effective_user.id, codes=codes,
                                      update_id=update.update_id)
    except ReportNotSaved:
        await query.edit_message_text(
            "❗ " + t._("Your report was NOT received because of a technical problem. "
                       "Please phone your study site now: {phone}", phone=site.phone))
        return
    context.user_data.pop("symptoms", None)
    context.user_data["note_for"] = saved.report_id
    if level is TriageLevel.EMERGENCY:
        text = t._("Your report was sent to your study team. Still call 120 or go to the emergency department now.")
    elif level is TriageLevel.SAME_DAY:
        text = t._("Your report was sent. Your study team will contact you today. "
                   "If it gets worse, call 120 or phone the site: {phone}", phone=site.phone)
    else:
        text = t._("Thank you, your report was saved. Keep watching for bleeding that will not stop, "
                   "black stool, blood in urine, or new large bruises, and report them here.")
    await query.edit_message_text("✅ " + text + "\n\n" + t._("If you want, type a short note now (optional)."))


async def on_note(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    rt = runtime(context)
    report_id = context.user_data.pop("note_for")
    patient = await current_patient(context, update.effective_user.id)
    t = translator_for(update, context, patient)
    saved = await symptoms.add_note(rt, telegram_user_id=update.effective_user.id, report_id=report_id,
                                    note=update.effective_message.text or "", update_id=update.update_id)
    await update.effective_message.reply_text(
        t._("Your note was added to your report.") if saved else t._("Please use the buttons. For help, send /help."))
