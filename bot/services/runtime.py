"""What every use case needs, passed explicitly (no global singletons)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.channels.port import Account
from bot.config import Settings
from bot.db.engine import session_factory, single_statement_engine
from bot.services.clock import Clock, SystemClock


@dataclass(frozen=True)
class KnownPatient:
    """What the emergency path needs about a patient when the database does not answer."""

    site_id: str
    locale: str
    timezone: str


class KnownPatients:
    """A small in-process memory of the patients seen lately (account → site and language),
    filled on every successful lookup. Only a fallback: the database is the truth."""

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Account, KnownPatient] = OrderedDict()

    def remember(self, account: Account, known: KnownPatient) -> None:
        self._items[account] = known
        self._items.move_to_end(account)
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def get(self, account: Account | None) -> KnownPatient | None:
        return self._items.get(account) if account is not None else None


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
        self._single_engine = single_statement_engine(self.engine)
        self._single_sessions: async_sessionmaker[AsyncSession] = session_factory(self._single_engine)

    def session(self) -> AsyncSession:
        return self._sessions()

    def single(self) -> AsyncSession:
        """A session for reads that need no transaction, or one atomic statement (on PostgreSQL
        without BEGIN and COMMIT: see `single_statement_engine`). Never for several writes."""
        return self._single_sessions()

    def single_connection(self) -> AsyncConnection:
        """A bare connection in the same mode as `single` (commit after a write: SQLite needs it)."""
        return self._single_engine.connect()

    def now(self):
        return self.clock.now()

    def staff(self, account: Account | None):
        """(site, coordinator) for a configured coordinator's account, else None."""
        return self.settings.staff_member(account)
