"""Telegram's flood limits: ~30 messages/s overall and 1 message/s per private chat (20/min per group).

PTB's AIORateLimiter allows bursts above 30 in a second and does not limit private chats at
all, so we keep our own gate. Each limit is a sliding window counted the way a server counts
it: a request holds a token from the moment it is dispatched until `period` seconds after its
answer arrived. The server saw the request no later than we saw the answer, so it never
counts more than `capacity` requests in any `period` whatever the network jitter: no 429 by
construction, at ~capacity/(period + round trip) per second. Grants are also spaced evenly
(period/capacity apart) so the traffic is smooth rather than bursty.

Waiters are served by priority (alerts, then interactive replies, then bulk reminders), so a
backlog of reminders never delays a safety alert by more than one slot. The courier passes
`rate_limit_args` (see `SendArgs`) to learn the exact moment its request is dispatched, which
is what lets it record "in flight" before the request leaves. 429 answers pause the whole gate
for `retry_after` and the request is retried (nothing is dropped).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import warnings
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from bot.channels.port import AbortTag, SendAborted

log = logging.getLogger("adherence.ratelimit")

PRIORITY_ALERT = 0
PRIORITY_INTERACTIVE = 1
PRIORITY_BULK = 2

# Bot API methods that put a message in a chat and count against the flood limits.
_LIMITED_PREFIXES = ("send", "edit", "copy", "forward")
_UNLIMITED = frozenset({"sendChatAction"})
GROUP_CAPACITY, GROUP_PERIOD = 20, 60.0


@dataclass
class SendArgs:
    """`rate_limit_args` for one send: its priority, a hook awaited after the slot is granted
    and right before the request is dispatched, and the abort tag of its sender."""

    priority: float = PRIORITY_BULK
    on_dispatch: Callable[[], Awaitable[None]] | None = None
    tag: AbortTag | None = None


def retry_after_seconds(error: RetryAfter) -> float:
    """`retry_after` in seconds, whichever type this PTB version hands out (int now, timedelta later)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PTB 22 warns that the type will change; we accept both
        value = error.retry_after
    return value.total_seconds() if hasattr(value, "total_seconds") else float(value)


def window_shape(per_second: float) -> tuple[int, float]:
    """(capacity, period) of a sliding window allowing `per_second` on average."""
    if per_second >= 1:
        return int(per_second), 1.0
    return 1, 1.0 / per_second


class Window:
    """At most `capacity` tokens out in any `period`; optionally grants spaced period/capacity apart."""

    _sequence = itertools.count()

    def __init__(self, capacity: int, period: float, *, spaced: bool = False) -> None:
        self.capacity, self.period = capacity, period
        self.interval = period / capacity if spaced else 0.0
        self.catch_up = max(self.interval, period / 4)
        self.busy = 0  # granted, answer not yet back
        self.frees: deque[float] = deque()  # instants at which answered tokens come back (ascending)
        self.next_grant = 0.0
        self.paused_until = 0.0
        self.waiters: list[tuple[int, int, asyncio.Future[None]]] = []  # heap
        self._timer: asyncio.TimerHandle | None = None

    @property
    def idle(self) -> bool:
        return not self.busy and not self.waiters and not self.frees

    def _available_at(self, now: float) -> float | None:
        while self.frees and self.frees[0] <= now:
            self.frees.popleft()
        if self.busy + len(self.frees) < self.capacity:
            at = now
        elif self.frees:
            at = self.frees[0]
        else:
            return None  # every token is in flight: the next answer will pump
        return max(at, self.next_grant, self.paused_until)

    def _pump(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self.waiters:
            if self.waiters[0][2].done():  # cancelled or aborted
                heapq.heappop(self.waiters)
                continue
            at = self._available_at(now)
            if at is None:
                return
            if at > now:
                self._timer = loop.call_at(at, self._pump)
                return
            _, _, future = heapq.heappop(self.waiters)
            self.busy += 1
            # Timers fire late (by a millisecond, or by a busy loop's tens); carrying that forward
            # costs rate. Up to a quarter period of it is caught up: a short burst that the window
            # still bounds to `capacity` per period.
            base = self.next_grant if now - self.next_grant < self.catch_up else now
            self.next_grant = base + self.interval
            future.set_result(None)

    async def acquire(self, priority: int, tag: AbortTag | None = None) -> None:
        if tag is not None and tag.aborted:
            raise SendAborted
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self.waiters, (priority, next(self._sequence), future))
        if tag is not None:
            tag.waiting.add(future)
            future.add_done_callback(tag.waiting.discard)
        self._pump()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.exception() is None:
                self.give_back()  # granted just as we were cancelled
            else:
                self._pump()
            raise
        except SendAborted:
            self._pump()
            raise

    def release(self) -> None:
        """The answer is back: the token frees `period` from now."""
        self.busy -= 1
        self.frees.append(asyncio.get_running_loop().time() + self.period)
        self._pump()

    def give_back(self) -> None:
        """The token was never used for a request."""
        self.busy -= 1
        self._pump()

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, asyncio.get_running_loop().time() + seconds)



class FloodGate:
    """One global window (spaced) plus one window per chat."""

    def __init__(self, *, global_per_second: float, per_chat_per_second: float) -> None:
        capacity, period = window_shape(global_per_second)
        self.overall = Window(capacity, period, spaced=True)
        self._chat_shape = window_shape(per_chat_per_second)
        self._chats: dict[int, Window] = {}

    def chat(self, chat_id: int) -> Window:
        window = self._chats.get(chat_id)
        if window is None:
            if len(self._chats) > 10_000:
                self._chats = {k: w for k, w in self._chats.items() if not w.idle}
            capacity, period = self._chat_shape if chat_id > 0 else (GROUP_CAPACITY, GROUP_PERIOD)
            window = self._chats[chat_id] = Window(capacity, period)
        return window

    async def acquire(self, chat_id: int | None, priority: int, tag: AbortTag | None = None) -> list[Window]:
        """Wait for the chat's slot, then a global one; returns the windows to release."""
        held: list[Window] = []
        try:
            if chat_id is not None:
                window = self.chat(chat_id)
                await window.acquire(priority, tag)
                held.append(window)
            await self.overall.acquire(priority, tag)
            held.append(self.overall)
        except BaseException:
            for window in held:
                window.give_back()
            raise
        return held


def _chat_id(endpoint: str, data: dict[str, Any]) -> tuple[bool, int | None]:
    if endpoint in _UNLIMITED or not endpoint.startswith(_LIMITED_PREFIXES):
        return False, None
    chat_id = data.get("chat_id")
    return True, chat_id if isinstance(chat_id, int) else None


class TelegramRateLimiter(BaseRateLimiter[SendArgs]):
    def __init__(self, *, global_per_second: float = 30, per_chat_per_second: float = 1, max_retries: int = 5) -> None:
        self.gate = FloodGate(global_per_second=global_per_second, per_chat_per_second=per_chat_per_second)
        self.max_retries = max_retries
        self.too_many_requests = 0

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def process_request(self, callback, args, kwargs, endpoint, data, rate_limit_args):
        limited, chat_id = _chat_id(endpoint, data)
        send = rate_limit_args if isinstance(rate_limit_args, SendArgs) else SendArgs(priority=PRIORITY_INTERACTIVE)
        if not limited:
            if send.on_dispatch is not None:
                await send.on_dispatch()
            return await callback(*args, **kwargs)
        for attempt in range(self.max_retries + 1):
            held = await self.gate.acquire(chat_id, send.priority, send.tag)
            try:
                if send.on_dispatch is not None:
                    await send.on_dispatch()
            except BaseException:
                for window in held:
                    window.give_back()
                raise
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as error:
                self.too_many_requests += 1
                delay = retry_after_seconds(error)
                log.warning("event=flood_wait retry_after=%.1f endpoint=%s attempt=%d", delay, endpoint, attempt + 1)
                self.gate.overall.pause(delay)
                if attempt >= self.max_retries:
                    raise
            finally:
                for window in held:
                    window.release()
        raise AssertionError("unreachable")
