"""Sending through the Bot API: one `OutgoingMessage` in, one `DeliveryResult` out.

Telegram's answers mapped onto the port (the courier applies the outbox policy):
- a message id → `Sent`; an edit that would change nothing or can no longer be applied is
  `Sent` too (its buttons are refused by the handlers anyway);
- 429 → `RetryAfter(retry_after)`;
- 403 (blocked, deactivated) and 400 "chat not found" → `Refused`; any other 400 → `Rejected`;
- a read timeout, read error or dropped connection after the request was written → `Unknown`
  (Telegram may have accepted it; the Bot API has no idempotency key);
- connection refused, connect/pool timeout, 5xx and other errors → `NotDelivered`.
"""

from __future__ import annotations

import logging

import httpx
from telegram import Bot
from telegram.error import BadRequest, Forbidden, NetworkError, TelegramError, TimedOut
from telegram.error import RetryAfter as TelegramRetryAfter

from bot.channels.port import (ChannelName, DeliveryResult, Dispatch, NotDelivered, OutgoingMessage, Recipient,
                               Refused, Rejected, RetryAfter, Sent, Unknown)
from bot.channels.telegram.floodgate import PRIORITY_ALERT, PRIORITY_BULK, SendArgs, TelegramRateLimiter, \
    retry_after_seconds
from bot.channels.telegram.keyboards import keyboard

log = logging.getLogger("adherence.telegram")


class TelegramChannel:
    name = ChannelName.TELEGRAM

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self._gated = isinstance(getattr(bot, "rate_limiter", None), TelegramRateLimiter)

    async def deliver(self, recipient: Recipient, message: OutgoingMessage, dispatch: Dispatch) -> DeliveryResult:
        if self._gated:
            # Within the alert lane, a first emergency before new alerts before repeats.
            priority = PRIORITY_ALERT + dispatch.rank / 10 if dispatch.urgent else PRIORITY_BULK
            args = {"rate_limit_args": SendArgs(priority=priority, on_dispatch=dispatch.on_dispatch, tag=dispatch.tag)}
        else:
            await dispatch.dispatching()
            args = {}
        chat_id = recipient.chat_id
        try:
            if message.copy_of is not None:
                sent = await self.bot.copy_message(chat_id, int(message.copy_of[0]), message.copy_of[1],
                                                   protect_content=message.protected,
                                                   disable_notification=message.silent or None, **args)
            elif message.edit_of is not None:
                return await self._edit(chat_id, message, args)
            else:
                sent = await self.bot.send_message(chat_id, message.text, reply_markup=keyboard(message.actions),
                                                   protect_content=message.protected,
                                                   disable_notification=message.silent or None, **args)
        except TelegramRetryAfter as error:
            return RetryAfter(retry_after_seconds(error))
        except Forbidden as error:
            return Refused(error.message)
        except BadRequest as error:
            if _chat_gone(error):
                return Refused(error.message)
            return Rejected(f"400 {error.message}")
        except (TimedOut, NetworkError) as error:
            if _uncertain(error):
                return Unknown(f"no answer after the request was sent: {error.message}")
            return NotDelivered(f"not delivered: {error.message}")
        except TelegramError as error:
            return NotDelivered(f"telegram: {error.message}")
        return Sent(sent.message_id)

    async def _edit(self, chat_id: int, message: OutgoingMessage, args: dict) -> DeliveryResult:
        try:
            await self.bot.edit_message_text(message.text, chat_id=chat_id, message_id=message.edit_of,
                                             reply_markup=keyboard(message.actions), **args)
        except BadRequest as error:
            if _chat_gone(error):
                raise
            log.info("event=edit_not_applied chat_message=%s reason=%r", message.edit_of, error.message)
        return Sent(message.edit_of)


def _chat_gone(error: BadRequest) -> bool:
    return "chat not found" in error.message.lower()


def _uncertain(error: TelegramError) -> bool:
    """Whether the request may have reached Telegram although we got no answer."""
    return isinstance(error.__cause__, (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError))
