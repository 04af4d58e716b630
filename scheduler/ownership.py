"""SQLite is single-process: refuse to start a second scheduler on the same file.

The owner (host:pid) and its heartbeat live in `runtime_state`. A newcomer takes over only
when the owner is itself, a process on this host that no longer exists (a crash, SIGKILL), or
silent for longer than `stale`. Taking over is a compare-and-swap on the row, so two processes
starting together cannot both win. The heartbeat is conditional too: an owner that finds
itself replaced stops scheduling instead of sending beside the new owner.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.db.models import RuntimeState
from bot.services.runtime import Runtime

OWNER_KEY = "scheduler.owner"


class AnotherSchedulerRunning(RuntimeError):
    pass


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def alive(owner: str) -> bool:
    """Whether the process named `owner` (host:pid) may still be running."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # cannot check another host: assume alive
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_after(rt: Runtime) -> timedelta:
    return timedelta(seconds=3 * rt.settings.delivery.sweep_seconds + 60)


async def claim_sqlite_ownership(rt: Runtime, *, owner: str) -> None:
    now = rt.now()
    async with rt.session() as session:
        row = await session.get(RuntimeState, OWNER_KEY)
        if row is None:
            inserted = await session.exec(sqlite_insert(RuntimeState).values(key=OWNER_KEY, value=owner, updated_at=now)
                                          .on_conflict_do_nothing(index_elements=["key"]))
            await session.commit()
            if inserted.rowcount == 1:
                return
            row = await session.get(RuntimeState, OWNER_KEY)
        previous, seen_at = row.value, row.updated_at
        if previous != owner and alive(previous) and seen_at > now - stale_after(rt):
            raise AnotherSchedulerRunning(
                f"another scheduler ({previous}) is using this SQLite database; run one process, or use PostgreSQL")
        swapped = await session.exec(update(RuntimeState).where(
            RuntimeState.key == OWNER_KEY, RuntimeState.value == previous, RuntimeState.updated_at == seen_at
        ).values(value=owner, updated_at=now))
        await session.commit()
        if swapped.rowcount != 1:
            raise AnotherSchedulerRunning("another scheduler took this SQLite database over while we were starting")


async def still_owner(rt: Runtime, *, owner: str, now: datetime) -> bool:
    """Heartbeat: refresh our claim; False if another process has taken over."""
    async with rt.session() as session:
        owned = await refresh_ownership(session, owner=owner, now=now)
        await session.commit()
        return owned


async def refresh_ownership(session, *, owner: str, now: datetime) -> bool:
    """`still_owner` inside the caller's transaction (committed with the rest of its heartbeat)."""
    result = await session.exec(update(RuntimeState).where(RuntimeState.key == OWNER_KEY,
                                                           RuntimeState.value == owner).values(updated_at=now))
    return result.rowcount == 1


async def release_sqlite_ownership(rt: Runtime, *, owner: str) -> None:
    async with rt.session() as session:
        await session.exec(delete(RuntimeState).where(RuntimeState.key == OWNER_KEY, RuntimeState.value == owner))
        await session.commit()
