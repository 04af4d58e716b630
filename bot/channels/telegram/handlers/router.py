"""Which handler gets an update, in PTB's own terms.

Buttons: each feature module's `handlers()` returns a CallbackQueryHandler per payload it owns,
with a pattern that matches the whole payload; a payload no feature claims (malformed, oversized,
unknown) reaches `_reject`. Free text: the caller's open dialog in the database gets it (in
TEXT_ANSWERS order, each answer may decline), else a tablet count, an invitation code, else it
is kept and relayed to the study team. A new feature adds its module to FEATURES (buttons) and,
if it asks for typed answers, a line to TEXT_ANSWERS."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import Application, BaseHandler, CallbackQueryHandler, MessageHandler, filters

from bot.channels.port import Account
from bot.domain.tokens import looks_like_token
from bot.channels.telegram.handlers import visits as visit_handlers
from bot.channels.telegram.handlers import (accountability, commands, conmed, coord_courses, coord_dialog, coord_invites,
                          coord_messages, coord_patients, coordinator, dosing, enrol, messages, symptoms)
from bot.channels.telegram.handlers.common import runtime, translator_for
from bot.channels.telegram.handlers.context import BotContext
from bot.services import dialogs, enrolment
from bot.services.accountability import parse_count
from bot.services.audit import audit
from bot.services.symptoms import NOTE_DIALOG

log = logging.getLogger("adherence.handlers")

FEATURES = (dosing, symptoms, enrol, commands, coordinator, coord_messages, coord_courses, coord_invites,
            coord_patients, conmed, visit_handlers, accountability)

# Dialog kind → its typed-answer handler (update, context, state, text) -> handled?, in priority order.
TEXT_ANSWERS = ((enrolment.DIALOG, enrol.on_typed), (dialogs.REMINDER_TIME, commands.on_typed_time),
                (NOTE_DIALOG, symptoms.on_typed))


async def _reject(update: Update, context: BotContext) -> None:
    """Malformed, oversized or unknown payloads: answer politely, change nothing, audit."""
    rt = runtime(context)
    async with rt.session() as session:
        audit(session, at=rt.now(), actor_kind="user", actor_id=Account.telegram(update.effective_user.id), action="callback.rejected",
              reason="malformed", update_id=update.update_id)
        await session.commit()
    t = translator_for(update, context)
    await update.callback_query.answer(t._("This button is no longer valid."), show_alert=True)


async def on_text(update: Update, context: BotContext) -> None:
    """A patient's (or a stranger's) typed text that is not a menu button."""
    text = (update.effective_message.text or "").strip()
    rt = runtime(context)
    try:
        async with rt.session() as session:
            open_dialogs = await dialogs.open_dialogs(session, channel_user_id=Account.telegram(
                update.effective_user.id).key, now=rt.now())
    except Exception as error:  # database down: typed words still get the safety net and an honest answer
        log.warning("event=text_lookup_failed error=%s", type(error).__name__)
        await messages.on_message(update, context, not_enrolled=commands.tell_not_enrolled)
        return
    for kind, answer in TEXT_ANSWERS:
        if kind in open_dialogs and await answer(update, context, open_dialogs[kind], text):
            return
    if parse_count(text) is not None and await accountability.on_typed(update, context):
        return  # a typed number answered the open tablet-count question
    if looks_like_token(text) and await context.patient() is None:
        await enrol.begin(update, context, text)
        return
    await messages.on_message(update, context, not_enrolled=commands.tell_not_enrolled)  # kept, relayed, answered


def callback_handlers() -> list[BaseHandler]:
    # PTB lets a button without any payload through every pattern: this one takes it first (its
    # pattern is asked only about a payload, and refuses them all).
    without_payload = CallbackQueryHandler(_reject, pattern=lambda data: False)
    return [without_payload, *(handler for feature in FEATURES for handler in feature.handlers()),
            CallbackQueryHandler(_reject)]


def text_handlers(private: filters.BaseFilter) -> list[BaseHandler]:
    """The persistent menu's buttons arrive as text: "report a symptom" first (the safety path needs
    no database), then the other two, then any other text."""
    def menu(key: str) -> filters.BaseFilter:
        return private & filters.Text(commands.menu_texts(key))

    return [MessageHandler(menu("report"), symptoms.start),
            MessageHandler(menu("status"), commands.status),
            MessageHandler(menu("chemo"), commands.chemo_finished),
            MessageHandler(private & filters.TEXT & ~filters.COMMAND, on_text)]


def register(application: Application, *, private: filters.BaseFilter, team: filters.BaseFilter) -> None:
    """Buttons and text (commands are registered by the application factory)."""
    application.add_handlers(callback_handlers())
    application.add_handler(MessageHandler(private & team & filters.TEXT & ~filters.COMMAND, coord_dialog.on_text))
    application.add_handlers(text_handlers(private))
