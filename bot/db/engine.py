"""Engine and session factory for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import time

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession


def normalize_url(url: str) -> str:
    """Accept plain postgresql:// URLs (as psql and operators write them) and use asyncpg."""
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    if url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.removeprefix("postgres://")
    return url


def is_sqlite(url_or_engine: str | AsyncEngine) -> bool:
    url = url_or_engine if isinstance(url_or_engine, str) else str(url_or_engine.url)
    return url.startswith("sqlite")


def make_engine(url: str, **kwargs) -> AsyncEngine:
    from bot.db import audit_chain

    audit_chain.install()  # audit rows are hash-chained at commit, whichever session writes them
    # Bound parameters (a patient's note, a subject id) never appear in error messages or logs.
    kwargs.setdefault("hide_parameters", True)
    url = normalize_url(url)
    if is_sqlite(url):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:
            # WAL lets readers run beside the single writer; busy_timeout rides out short locks.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        _skip_idle_transaction_ends(engine)
        return engine
    # asyncpg prepares each statement once per connection and keeps the last N: a miss costs a
    # round trip of its own, and the bot runs a few hundred distinct statements (default: 100).
    kwargs.setdefault("connect_args", {}).setdefault("prepared_statement_cache_size", PREPARED_STATEMENTS)
    engine = create_async_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_after_idle(engine)
    return engine


def _skip_idle_transaction_ends(engine: AsyncEngine) -> None:
    """aiosqlite runs every call on the connection's own thread, so each COMMIT and ROLLBACK is a
    round trip between threads, even when no transaction is open (a session that only read ends
    with a ROLLBACK), where sqlite3 itself does nothing. Skip exactly those: sqlite3 says whether a
    transaction is open from any thread, and the connection is idle while it is being ended."""
    dialect = engine.sync_engine.dialect
    do_commit, do_rollback = dialect.do_commit, dialect.do_rollback

    def transaction_open(dbapi_connection) -> bool:
        try:
            return dbapi_connection.driver_connection._conn.in_transaction  # aiosqlite → sqlite3
        except Exception:  # closed, or not what we expect: end it the usual way
            return True

    dialect.do_commit = lambda dbapi_connection: (do_commit(dbapi_connection)
                                                  if transaction_open(dbapi_connection) else None)
    dialect.do_rollback = lambda dbapi_connection: (do_rollback(dbapi_connection)
                                                    if transaction_open(dbapi_connection) else None)


# A pooled PostgreSQL connection idle this long is pinged before use (a restarted server, a dropped
# network link); one reused sooner is not. SQLAlchemy's pool_pre_ping pings on every checkout, and
# its asyncpg ping is three round trips (BEGIN, ";", ROLLBACK): more than most of our sessions'
# own statements. A connection that dies within these seconds fails one operation, as a
# connection dying mid-transaction always can: the scheduler retries its pass, and the
# handlers' database-fault paths (DESIGN.md §1) answer the patient.
PING_AFTER_IDLE_SECONDS = 5.0
PREPARED_STATEMENTS = 512


def _ping_after_idle(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "checkin")
    def _idle_from(_dbapi_connection, record) -> None:
        record.info["idle_from"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy) -> None:
        idle_from = record.info.get("idle_from")  # None: connected just now
        if idle_from is None or time.monotonic() - idle_from < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # the pool discards this connection and checks out a new one
            raise DisconnectionError("pooled connection did not answer a ping") from error


def single_statement_engine(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, for work of one statement (a read, or one atomic write such as a claim): on
    PostgreSQL in autocommit, one round trip instead of three (BEGIN, the statement, COMMIT). On
    SQLite a read begins no transaction anyway, so nothing changes there."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def execute(db: AsyncSession | AsyncConnection, statement):
    """Run a Core statement in a session's transaction or on a bare connection (cheaper, for work
    paid on every update)."""
    return await (db.exec(statement) if isinstance(db, AsyncSession) else db.execute(statement))
