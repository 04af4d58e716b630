"""Buttons under the prohibited-medicine question: No / Yes → pick-list → recorded (+ alert)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler

from bot.channels.telegram.handlers.common import answer_quietly, runtime, translator_for
from bot.channels.telegram.handlers.context import BotContext
from bot.channels.telegram.handlers.dosing import edit_unless_unchanged
from bot.channels.port import Account
from bot.render import callbacks as cb
from bot.render import conmed as render
from bot.render.conmed import POINTS_BY_CODE
from bot.services import conmed


async def on_callback(update: Update, context: BotContext) -> None:
    course_id, code, answer, *category = context.match.groups()
    course_id, point, category = int(course_id), POINTS_BY_CODE[code], category[0] if category else None
    rt = runtime(context)
    query, user_id = update.callback_query, update.effective_user.id
    if answer in (render.ANSWER_YES, "b") and category is None:  # show the pick-list, or go back to the question
        result = await conmed.authorize(rt, account=Account.telegram(user_id), course_id=course_id, point=point,
                                        update_id=update.update_id)
    else:
        result = await conmed.record(rt, account=Account.telegram(user_id), course_id=course_id, point=point,
                                     answer=conmed.YES if answer == render.ANSWER_YES else conmed.NO,
                                     category=category, update_id=update.update_id)
    t = translator_for(update, context, result.patient)
    if result.status == "not_yours":
        await answer_quietly(query, t._("This button is not for you."), show_alert=True)
    elif result.status in ("off", "course_gone", "unknown_category"):
        await answer_quietly(query, t._("This button is no longer valid."), show_alert=True)
        await edit_unless_unchanged(query, query.message.text if query.message else "", None)
    elif result.status == "already":
        await answer_quietly(query, t._("Already recorded. Thank you."))
        await _show_recorded(update, rt, t, result)
    elif result.status == "ok":
        await answer_quietly(query)
        text, markup = (render.pick_list(t, rt.settings, course_id, point) if answer == render.ANSWER_YES
                        else render.question(t, rt.settings, course_id, point))
        await edit_unless_unchanged(query, text, markup)
    else:
        await answer_quietly(query, t._("Recorded."))
        await _show_recorded(update, rt, t, result)


async def _show_recorded(update: Update, rt, t, result) -> None:
    report = result.report
    if report is None:
        return
    if report.answer == conmed.YES:
        text, markup = render.recorded_yes(t, rt.settings, rt.settings.site(result.patient.site_id), report.category)
    else:
        text, markup = render.recorded_no(t)
    await edit_unless_unchanged(update.callback_query, text, markup)


def handlers() -> list[BaseHandler]:
    point = cb.one_of(POINTS_BY_CODE)
    return [CallbackQueryHandler(on_callback, pattern=cb.pattern("cm", cb.ID, point, "(n|y|b)")),
            CallbackQueryHandler(on_callback, pattern=cb.pattern("cm", cb.ID, point, "(y)", "([a-z0-9_]{1,16})"))]
