"""What a patient types or sends outside a question: kept, relayed to the team, answered.

The keyword safety net runs on the configuration alone, so matching advice (120, the site's
phone) is shown first, even if the database is down; the answer then says honestly whether the
message reached the team and when a person will read it.
"""

from __future__ import annotations

import asyncio
import logging

from telegram import Message, Update
from telegram.error import TelegramError

from bot.channels.telegram.keyboards import as_markup
from bot.channels.port import Action, Account
from bot.render.actions import buttons
from bot.domain.triage import TriageLevel
from bot.channels.telegram.handlers.common import fallback_translator, known_sites, runtime
from bot.channels.telegram.handlers.context import BotContext
from bot.render import callbacks as cb
from bot.render import patient as render
from bot.services import messages
from bot.services.messages import NotAPatient, Relayed

log = logging.getLogger("adherence.messages")

MEDIA = ("voice", "audio", "photo", "video", "video_note", "document", "sticker", "animation", "location",
         "contact")


def kind_and_text(message: Message) -> tuple[str, str | None]:
    for kind in MEDIA:
        if getattr(message, kind, None):
            return ("video" if kind == "video_note" else kind), message.caption
    return "text", message.text


async def on_message(update: Update, context: BotContext, *, not_enrolled=None) -> None:
    """A patient's free text or media. `not_enrolled(update, context)` answers a stranger."""
    rt = runtime(context)
    message = update.effective_message
    kind, text = kind_and_text(message)
    level, _ = messages.classify(rt, text)
    t = fallback_translator(update, context)
    sites = known_sites(context, update.effective_user.id)
    advice = asyncio.create_task(_advice(message, t, sites)) if level is TriageLevel.EMERGENCY else None
    try:
        relayed: Relayed | None = await messages.receive(
            rt, account=Account.telegram(update.effective_user.id), kind=kind, text=text,
            channel_message_id=message.message_id, update_id=update.update_id)
    except NotAPatient:
        relayed = None
        if advice is None and not_enrolled is not None:
            await not_enrolled(update, context)
            return
    except Exception as error:  # the database: the patient is told it did not arrive
        log.error("event=patient_message_not_saved error=%s", type(error).__name__)
        relayed = None
    if advice is not None:
        await advice
    if relayed is not None:
        sites = [rt.settings.site(relayed.site_id)]
    offer = buttons([[Action(t._("⚠ Report a symptom"), data=cb.menu("report"))]]) \
        if level is not None else None
    await message.reply_text(render.relay_answer(t, level, relayed, sites), reply_markup=as_markup(offer))


async def _advice(message: Message, t, sites) -> None:
    try:
        await message.reply_text(render.emergency_advice(t, sites))
    except TelegramError as error:
        log.warning("event=message_advice_failed error=%s", type(error).__name__)
