"""`adherence-bot health`: healthy only if the database answers and the scheduler swept recently."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import text

from bot.config import Settings
from bot.db.engine import make_engine
from bot.db.models import RuntimeState
from bot.services.runtime import Runtime


async def check(settings: Settings, *, now: datetime | None = None) -> tuple[bool, str]:
    now = now or datetime.now(timezone.utc)
    engine = make_engine(settings.database.url)
    try:
        rt = Runtime(settings=settings, engine=engine)
        async with rt.session() as session:
            await session.exec(text("SELECT 1"))
            sweep = await session.get(RuntimeState, "scheduler.last_sweep")
    except Exception as error:  # any failure to answer is unhealthy; say what, not the URL
        return False, f"database unreachable: {type(error).__name__}"
    finally:
        await engine.dispose()
    if sweep is None:
        return False, "scheduler has never swept"
    limit = timedelta(seconds=3 * settings.delivery.sweep_seconds)
    age = now - sweep.updated_at
    if age > limit:
        return False, f"scheduler last swept {int(age.total_seconds())} s ago (limit {int(limit.total_seconds())} s)"
    return True, f"ok: database answers, scheduler swept {int(age.total_seconds())} s ago by {sweep.value}"
