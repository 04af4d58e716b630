"""Infrastructure failing like infrastructure: Bot API faults through the sandbox, database
connection drops (commits failing for a moment), and the bookkeeping of what was injected."""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager

from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.sandbox import BotApiSandbox


class DatabaseDrops:
    """While armed, the next `n` commits (any session: handlers, scheduler, courier) fail as a
    dropped connection would. Installed once per run; restored afterwards."""

    def __init__(self) -> None:
        self.remaining = 0
        self.failed = 0
        self._original = None

    def install(self) -> None:
        original = self._original = AsyncSession.commit
        drops = self

        async def commit(session: AsyncSession) -> None:
            if drops.remaining > 0:
                drops.remaining -= 1
                drops.failed += 1
                await session.rollback()
                raise OperationalError("COMMIT", {}, ConnectionResetError("simulated: connection to the database lost"))
            await original(session)

        AsyncSession.commit = commit  # type: ignore[method-assign]

    def uninstall(self) -> None:
        if self._original is not None:
            AsyncSession.commit = self._original  # type: ignore[method-assign]
            self._original = None

    def arm(self, commits: int) -> None:
        self.remaining += commits

    def disarm(self) -> None:
        self.remaining = 0

    @contextmanager
    def installed(self):
        self.install()
        try:
            yield self
        finally:
            self.uninstall()


class TelegramFaults:
    """Queue sandbox faults and count them by kind (injected, and actually hit)."""

    SLOW = ("timeout_after_accept", "flood")

    def __init__(self, sandbox: BotApiSandbox, *, max_slow: int) -> None:
        self.sandbox = sandbox
        self.max_slow = max_slow
        self.injected: Counter = Counter()

    def inject(self, kind: str, *, chat_id: int | None = None, method: str | None = None, delay: float = 0.0) -> bool:
        if kind in self.SLOW and sum(self.injected[k] for k in self.SLOW) >= self.max_slow:
            kind = "server_error"
        if kind == "timeout_after_accept":
            delay = delay or 1.5
        self.sandbox.inject_fault(kind=kind, chat_id=chat_id, method=method, times=1, retry_after=1, delay=delay)
        self.injected[kind] += 1
        return True

    def hit(self) -> Counter:
        """Faults injected and consumed by a call (those still queued never happened)."""
        left = Counter(f.kind for f in self.sandbox._faults)
        return Counter({k: v - left[k] for k, v in self.injected.items() if v - left[k] > 0})
