"""`adherence-bot health`: healthy only if the database answers, the scheduler swept recently, and
every site has an alert recipient its channel (Telegram, email) has not refused (an alert must reach a person)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import text
from sqlmodel import select

from bot.config import Settings
from bot.channels.port import Recipient
from bot.db.engine import make_engine
from bot.db.models import RuntimeState, UnreachableRecipient
from bot.services.alerts import alert_recipients
from bot.services.runtime import Runtime


async def check(settings: Settings, *, now: datetime | None = None) -> tuple[bool, str]:
    now = now or datetime.now(timezone.utc)
    engine = make_engine(settings.database.url)
    try:
        rt = Runtime(settings=settings, engine=engine)
        async with rt.session() as session:
            await session.exec(text("SELECT 1"))
            sweep = await session.get(RuntimeState, "scheduler.last_sweep")
            gone = {Recipient(channel, address) for channel, address in (await session.exec(
                select(UnreachableRecipient.channel, UnreachableRecipient.address))).all()}
    except Exception as error:  # any failure to answer is unhealthy; say what, not the URL
        return False, f"database unreachable: {type(error).__name__}"
    finally:
        await engine.dispose()
    stranded = [site.id for site in settings.sites if not set(alert_recipients(site)) - gone]
    if stranded:
        return False, (f"no reachable alert recipient at site(s) {', '.join(stranded)}: their channels refused every "
                       "coordinator / alert chat / coordinator email (blocked or gone); alerts go to the escalation "
                       "contact only")
    if sweep is None:
        return False, "scheduler has never swept"
    limit = timedelta(seconds=3 * settings.delivery.sweep_seconds)
    age = now - sweep.updated_at
    if age > limit:
        return False, f"scheduler last swept {int(age.total_seconds())} s ago (limit {int(limit.total_seconds())} s)"
    return True, f"ok: database answers, scheduler swept {int(age.total_seconds())} s ago by {sweep.value}"
