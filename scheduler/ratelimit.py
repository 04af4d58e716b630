"""Telegram's flood limits: ~30 messages/s overall and 1 message/s per private chat.

PTB's AIORateLimiter retries on 429 (waiting `retry_after`) but its leaky bucket allows bursts
above 30 in a second and does not limit private chats at all. We keep its retry handling and
add strict spacing: requests are given evenly spaced slots, globally and per private chat.
"""

from __future__ import annotations

import asyncio
from typing import Any

from telegram.ext import AIORateLimiter


class Spacer:
    """Hands out slots at least `1/per_second` apart, first come first served."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self.next_slot = 0.0

    async def wait(self) -> None:
        now = asyncio.get_running_loop().time()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


class TelegramRateLimiter(AIORateLimiter):
    def __init__(self, *, global_per_second: float = 30, per_chat_per_second: float = 1, max_retries: int = 5,
                 safety: float = 0.97) -> None:
        # Disable the base class's own overall bucket; keep its group limiter and 429 retries.
        super().__init__(overall_max_rate=0, overall_time_period=0, max_retries=max_retries)
        self._global = Spacer(global_per_second * safety)
        self._per_chat_rate = per_chat_per_second * safety
        self._chats: dict[int, Spacer] = {}

    def _chat_spacer(self, chat_id: int) -> Spacer:
        if len(self._chats) > 20_000:
            now = asyncio.get_running_loop().time()
            self._chats = {k: v for k, v in self._chats.items() if v.next_slot > now}
        return self._chats.setdefault(chat_id, Spacer(self._per_chat_rate))

    async def _run_request(self, chat: bool, group: Any, allow_paid_broadcast: bool, callback, args, kwargs):
        if chat:  # args == (endpoint, data) as ExtBot passes them
            chat_id = args[1].get("chat_id")
            if isinstance(chat_id, int) and chat_id > 0:
                await self._chat_spacer(chat_id).wait()
            await self._global.wait()
        return await super()._run_request(chat, group, allow_paid_broadcast, callback, args, kwargs)
