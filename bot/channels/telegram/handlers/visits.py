"""/visit for coordinators (register, move, cancel, attended) and the patient's answer buttons
under a visit reminder."""

from __future__ import annotations

import re
from datetime import time

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler

from bot.channels.telegram.handlers.common import answer_quietly, runtime, translator_for
from bot.channels.telegram.handlers.context import BotContext
from bot.channels.telegram.handlers.coord_common import REFUSED, guarded, parse_date, require_coordinator, tell
from bot.channels.telegram.handlers.dosing import edit_unless_unchanged
from bot.channels.port import Account
from bot.render import callbacks as cb
from bot.render import visits as render
from bot.services import visits
from bot.services.visits import VisitRefused

_TIME = re.compile(r"\A([01]?\d|2[0-3]):([0-5]\d)\Z")


def parse_time(raw: str | None) -> time | None:
    match = _TIME.match((raw or "").strip())
    return time(int(match[1]), int(match[2])) if match else None


def parse_command(args: list[str]) -> dict | None:
    """The /visit (and CLI `visit`) arguments, or None when malformed."""
    if len(args) >= 2 and args[0].lower() in ("cancel", "attended") and args[1].isdigit():
        action = args[0].lower()
        reason = " ".join(args[2:])
        return {"action": action, "visit_id": int(args[1]), "reason": reason}
    if len(args) >= 5 and args[0].lower() == "move" and args[1].isdigit():
        day, clock = parse_date(args[2]), parse_time(args[3])
        if day and clock:
            return {"action": "move", "visit_id": int(args[1]), "local_date": day, "local_time": clock,
                    "reason": " ".join(args[4:])}
        return None
    if len(args) in (3, 4):
        day, clock = parse_date(args[1]), parse_time(args[2])
        if day and clock:
            return {"action": "register", "subject": args[0].upper(), "local_date": day, "local_time": clock,
                    "kind": args[3] if len(args) == 4 else None}
    return None


async def run_command(rt, actor, parsed: dict, update_id: int | None = None):
    if parsed["action"] == "register":
        return await visits.register(rt, actor, subject_id=parsed["subject"], local_date=parsed["local_date"],
                                     local_time=parsed["local_time"], kind=parsed["kind"], update_id=update_id)
    return await visits.change(rt, actor, visit_id=parsed["visit_id"], action=parsed["action"],
                               reason=parsed.get("reason"), local_date=parsed.get("local_date"),
                               local_time=parsed.get("local_time"), update_id=update_id)


async def visit(update: Update, context: BotContext) -> None:
    if not (found := await require_coordinator(update, context, "visit")):
        return
    actor, t = found
    rt = runtime(context)
    parsed = parse_command(list(context.args or []))
    if parsed is None:
        await tell(update, render.usage(t, rt.settings))
        return
    try:
        done = await guarded(update, t, parsed.get("subject"), lambda: run_command(rt, actor, parsed,
                                                                                   update.update_id))
    except VisitRefused as refused:
        await tell(update, render.refusal(t, refused.code))
        return
    if done is REFUSED:
        return
    visit_row, patient = done
    if parsed["action"] == "register":
        await tell(update, render.registered(t, rt.settings, visit_row, patient.subject_id))
    else:
        await tell(update, render.changed(t, rt.settings, visit_row, patient.subject_id))


async def on_answer(update: Update, context: BotContext) -> None:
    visit_id, choice = int(context.match[1]), context.match[2]
    rt = runtime(context)
    query = update.callback_query
    result = await visits.answer(rt, account=Account.telegram(update.effective_user.id), visit_id=visit_id,
                                 choice=visits.COMING if choice == render.COMING else visits.CHANGE,
                                 update_id=update.update_id)
    t = translator_for(update, context, result.patient)
    if result.status == "not_yours":
        await answer_quietly(query, t._("This button is not for you."), show_alert=True)
    elif result.status in ("gone", "off"):
        await answer_quietly(query, t._("This button is no longer valid."), show_alert=True)
    else:
        await answer_quietly(query, t._("Recorded."))
        site = rt.settings.site(result.patient.site_id)
        await edit_unless_unchanged(query, *render.answered(t, rt.settings, site, result.visit))


def handlers() -> list[BaseHandler]:
    return [CallbackQueryHandler(on_answer, pattern=cb.pattern("vs", cb.ID, "(c|x)"))]
