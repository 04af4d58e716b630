"""What every use case needs, passed explicitly (no global singletons)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings
from bot.db.engine import session_factory
from bot.services.clock import Clock, SystemClock


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    clock: Clock = field(default_factory=SystemClock)
    # Called after a change that may move the scheduler's next due instant.
    wake: Callable[[], None] = lambda: None

    def __post_init__(self) -> None:
        self._sessions: async_sessionmaker[AsyncSession] = session_factory(self.engine)

    def session(self) -> AsyncSession:
        return self._sessions()

    def now(self):
        return self.clock.now()

    def settings_coordinator(self, telegram_id: int):
        """(site, coordinator) for a configured coordinator id, else None."""
        for site in self.settings.sites:
            for coordinator in site.coordinators:
                if coordinator.telegram_id == telegram_id:
                    return site, coordinator
        return None
