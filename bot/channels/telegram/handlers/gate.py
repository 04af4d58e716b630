"""Before any handler: drop an update some process already took on (a webhook redelivery, or
the same update reaching a second instance), and load what the caller's language needs.

One atomic INSERT per update, and one read of what the next handlers ask about the caller
(`CallerFacts`; a stranger's chosen language too). If the database does not answer the update is
handled anyway: the emergency path must not depend on it (DESIGN.md §1), and nothing else can
write either.

The record is made before the handlers run, so a process killed between the two (a window of
milliseconds) drops that update rather than risk handling it twice; the person saw no answer
and taps or types again, which is a new update. PTB's webhook server answers Telegram before
handling, so in webhook mode such an update was never redelivered anyway."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.ext import ApplicationHandlerStop, TypeHandler

from bot.channels.telegram.handlers.context import BotContext
from bot.channels.port import Account
from bot.services import dialogs, seen_updates
from bot.services.queries import caller_facts

log = logging.getLogger("adherence.handlers")
GROUP = -100  # runs before every other handler group
CHANNEL = "telegram"


async def _gate(update: Update, context: BotContext) -> None:
    rt = context.runtime
    user = update.effective_user
    try:
        async with rt.single_connection() as connection:  # one atomic INSERT, then a read
            first = await seen_updates.first_time(connection, channel=CHANNEL, update_id=update.update_id,
                                                  now=rt.now())
            if first and user is not None and context.staff is None:
                account = Account.telegram(user.id)
                # For reachability and the helper routing, which run next (one statement for both).
                context.caller_facts = await caller_facts(connection, account=account)
                # Only someone who is not (yet) a patient may have chosen a language here.
                if rt.known_patients.get(account) is None:
                    chosen = await dialogs.get(connection, channel_user_id=account.key, kind=dialogs.LOCALE,
                                               now=rt.now())
                    context.stranger_locale = chosen["locale"] if chosen else None
            await connection.commit()
    except Exception as error:
        log.warning("event=update_gate_failed error=%s", type(error).__name__)
        return
    if not first:
        log.info("event=duplicate_update_dropped update_id=%s", update.update_id)
        raise ApplicationHandlerStop


def handler() -> TypeHandler:
    return TypeHandler(Update, _gate)
