"""What every use case needs, passed explicitly (no global singletons)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings
from bot.db.engine import session_factory
from bot.services.clock import Clock, SystemClock


@dataclass(frozen=True)
class KnownPatient:
    """What the emergency path needs about a patient when the database does not answer."""

    site_id: str
    locale: str
    timezone: str


class KnownPatients:
    """A small in-process memory of the patients seen lately (telegram user id → site and
    language), filled on every successful lookup. Only a fallback: the database is the truth."""

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[int, KnownPatient] = OrderedDict()

    def remember(self, user_id: int, known: KnownPatient) -> None:
        self._items[user_id] = known
        self._items.move_to_end(user_id)
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def get(self, user_id: int) -> KnownPatient | None:
        return self._items.get(user_id)


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    clock: Clock = field(default_factory=SystemClock)
    # Called after a change that may move the scheduler's next due instant.
    wake: Callable[[], None] = lambda: None
    known_patients: KnownPatients = field(default_factory=KnownPatients)

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
