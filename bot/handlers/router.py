"""One callback entry point: parse the payload strictly, then hand it to its feature."""

from __future__ import annotations

import logging
import re

from telegram import Update
from telegram.ext import ContextTypes

from bot.handlers import visits as visit_handlers
from bot.handlers import (accountability, conmed, coord_courses, coord_invites, coord_messages, coord_patients, coordinator, dosing,
                          enrol, symptoms)
from bot.render.conmed import POINTS_BY_CODE
from bot.handlers.commands import on_menu
from bot.handlers.common import runtime, translator_for
from bot.render import callbacks as cb
from bot.services.audit import audit

log = logging.getLogger("adherence.handlers")


async def _reject(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Malformed, oversized or unknown payloads: answer politely, change nothing, audit."""
    rt = runtime(context)
    async with rt.session() as session:
        audit(session, at=rt.now(), actor_kind="user", actor_id=update.effective_user.id, action="callback.rejected",
              reason="malformed", update_id=update.update_id)
        await session.commit()
    t = translator_for(update, context)
    await update.callback_query.answer(t._("This button is no longer valid."), show_alert=True)


_CODE = re.compile(r"^[a-z0-9_]{1,16}$")


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) <= 12 else None


async def on_callback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    parsed = cb.parse(update.callback_query.data)
    args = parsed.args if parsed else ()
    kind = parsed.kind if parsed else None
    if kind == "d" and len(args) == 2 and _int(args[0]) and args[1] in cb.DOSE_ACTIONS:
        await dosing.on_dose(update, context, _int(args[0]), args[1])
    elif kind == "r" and len(args) == 2 and _int(args[0]):
        await dosing.on_missed_reason(update, context, _int(args[0]), args[1])
    elif kind == "s" and (len(args) == 1 or (len(args) == 2 and args[0] == "_send")):
        await symptoms.on_callback(update, context, args[0], args[1] if len(args) == 2 else None)
    elif kind == "e" and len(args) == 2:
        await enrol.on_callback(update, context, args[0], args[1])
    elif kind == "m" and len(args) == 1:
        await on_menu(update, context, args[0])
    elif kind == "a" and len(args) == 1 and _int(args[0]):
        await coordinator.on_ack(update, context, _int(args[0]))
    elif kind == "rp" and len(args) == 1 and _int(args[0]):
        await coord_messages.on_reply(update, context, _int(args[0]))
    elif kind in ("pc", "pk") and len(args) == 1 and _int(args[0]):
        await coord_courses.on_patient_course(update, context, _int(args[0]), confirm=kind == "pc")
    elif kind == "cy" and len(args) == 3 and args[0] in (cb.COURSE_REGISTER, cb.COURSE_DROP) and \
            args[2].isdigit() and len(args[2]) == 8:
        await coord_courses.on_register(update, context, args[0], args[1], args[2])
    elif kind == "iv" and len(args) == 1 and _int(args[0]):
        await coord_invites.on_revoke(update, context, _int(args[0]))
    elif kind == "pt" and len(args) == 2 and args[0] in (cb.PAUSE, cb.RESUME, cb.WITHDRAW, cb.REBIND):
        await coord_patients.on_action(update, context, args[0], args[1])
    elif kind == "cm" and len(args) in (3, 4) and _int(args[0]) and args[1] in POINTS_BY_CODE and \
            args[2] in ("n", "y", "b") and (len(args) == 3 or (args[2] == "y" and _CODE.match(args[3]))):
        await conmed.on_callback(update, context, _int(args[0]), POINTS_BY_CODE[args[1]], args[2],
                                 args[3] if len(args) == 4 else None)
    elif kind == "vs" and len(args) == 2 and _int(args[0]) and args[1] in ("c", "x"):
        await visit_handlers.on_answer(update, context, _int(args[0]), args[1])
    elif kind == "tc" and len(args) == 2 and _int(args[0]) and args[1] in ("0", "1", "2", "3", "4", "5", "m"):
        await accountability.on_callback(update, context, _int(args[0]), args[1])
    else:
        await _reject(update, context)
