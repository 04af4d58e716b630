"""Telegram outages while polling: one warning when getUpdates stops reaching Telegram, one line
with the outage's duration when it comes back, and nothing per failed attempt in between.

PTB retries a failed getUpdates by itself and hands each failure to the error handler; a short
network blip would otherwise log an ERROR with a traceback every few seconds and page whoever
watches the logs. The getUpdates request object sees every attempt, so it tells the outage
apart from its end; the error handler only drops the per-attempt network errors it reports.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from telegram.error import NetworkError, RetryAfter
from telegram.request import HTTPXRequest

log = logging.getLogger("adherence.polling")


class PollingOutage:
    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self.started: float | None = None
        self.failed_attempts = 0

    @property
    def ongoing(self) -> bool:
        return self.started is not None

    def failed(self, reason: str) -> None:
        self.failed_attempts += 1
        if self.started is None:
            self.started = self._monotonic()
            log.warning("event=telegram_unreachable reason=%s (polling retries; logged once per outage)", reason)

    def succeeded(self) -> None:
        if self.started is None:
            return
        log.warning("event=telegram_reachable_again outage_seconds=%.1f failed_polls=%d",
                    self._monotonic() - self.started, self.failed_attempts)
        self.started, self.failed_attempts = None, 0


class PollingRequest(HTTPXRequest):
    """The getUpdates connection, reporting each attempt's outcome to a PollingOutage."""

    def __init__(self, *args, outage: PollingOutage, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.outage = outage

    async def do_request(self, *args, **kwargs):
        try:
            code, payload = await super().do_request(*args, **kwargs)
        except NetworkError as error:  # includes TimedOut
            self.outage.failed(type(error).__name__)
            raise
        if code >= 500:
            self.outage.failed(f"http_{code}")
        else:
            self.outage.succeeded()
        return code, payload


def is_polling_network_error(update: object, error: BaseException | None) -> bool:
    """A failed getUpdates that PTB will retry (no update involved): counted, not an ERROR."""
    return update is None and isinstance(error, NetworkError) and not isinstance(error, RetryAfter)
