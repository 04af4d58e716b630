"""SQLite is single-process: refuse to start a second scheduler on the same file."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from bot.db.models import RuntimeState
from bot.services.runtime import Runtime

OWNER_KEY = "scheduler.owner"


class AnotherSchedulerRunning(RuntimeError):
    pass


def _alive(owner: str) -> bool:
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


async def claim_sqlite_ownership(rt: Runtime, *, owner: str) -> None:
    now = rt.now()
    async with rt.session() as session:
        row = await session.get(RuntimeState, OWNER_KEY)
        if row is not None and row.value != owner and _alive(row.value) and \
                row.updated_at > now - timedelta(seconds=3 * rt.settings.delivery.sweep_seconds + 60):
            raise AnotherSchedulerRunning(
                f"another scheduler ({row.value}) is using this SQLite database; run one process, or use PostgreSQL")
        row = row or RuntimeState(key=OWNER_KEY)
        row.value, row.updated_at = owner, now
        session.add(row)
        await session.commit()
