"""The coordinators' morning digest, queued through the outbox like everything else the bot
sends on its own.

At the site's local `[alerts] digest_time` (DST-correct: the instant is computed from the local
date and wall time in the site's zone) the lifecycle claims the site-day once (a runtime_state
row, ON CONFLICT DO NOTHING: one digest per site per local day across restarts and processes),
fixes the digest's window (since the previous digest, up to now), moves the "last digest" mark
and queues one row per recipient and message part in the normal lane (alerts have their own lane,
so a digest never goes ahead of them). Each row's dedupe key names the site, day, recipient and
part. The courier composes each row when it sends it (`scheduler/compose.py`), from the window
in its payload and the current state, and delivers it with the outbox policy.

Who gets it is what the site's alert chats are (`Site.alert_chats`: the alert chat, else each
coordinator's chat), each in their own language. A digest is queued at its time or up to
`LATE` after it (a restart just after the digest time still sends it); one whose time passed
longer ago while the bot was down is not sent late, and the next morning's window starts at the
last digest queued, so nothing is left out of it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.domain.outbox import OutboxKind, OutboxState
from bot.channels.port import Recipient
from bot.config import Settings, Site, parse_hhmm
from bot.db.models import Outbox, RuntimeState
from bot.domain.schedule import local_due_instant
from bot.render.coord_reports import digest_text
from bot.render.coordinator import reader_translator
from bot.services import digest
from bot.services.outbox import NORMAL_LANE

KIND = OutboxKind.DIGEST
LATE = timedelta(minutes=15)
PRIORITY = 2  # after everything new in the normal lane (a patient's reminder first)


def digest_instant(settings: Settings, site: Site, day: date) -> datetime:
    """The site's digest time on its local `day`, as a UTC instant (DST-correct)."""
    return local_due_instant(day, parse_hhmm(settings.alerts.digest_time), site.tz)


def next_digest(settings: Settings, *, now: datetime) -> datetime | None:
    """The earliest digest instant after `now`, over all sites (the scheduler wakes for it)."""
    instants = []
    for site in settings.sites:
        if not site.alert_chats():
            continue
        today = now.astimezone(site.tz).date()
        at = digest_instant(settings, site, today)
        instants.append(at if at > now else digest_instant(settings, site, today + timedelta(days=1)))
    return min(instants, default=None)


def dedupe_key(site_id: str, day: date, recipient: Recipient, part: int) -> str:
    return f"{KIND}:{site_id}:{day.isoformat()}:{recipient.short_key}:{part}"


async def queue_digests(session: AsyncSession, *, settings: Settings, now: datetime, owner: str = "scheduler") -> int:
    """Queue each site's digest for its local day once its time has come; returns sites queued."""
    due = {}
    for site in settings.sites:
        day = now.astimezone(site.tz).date()
        at = digest_instant(settings, site, day)
        if at <= now < at + LATE and site.alert_chats():
            due[digest.day_key(site.id, day)] = (site, day)
    if not due:
        return 0
    claimed = set((await session.exec(select(RuntimeState.key).where(col(RuntimeState.key).in_(list(due))))).all())
    queued = 0
    for key, (site, day) in due.items():
        if key in claimed or not await digest.claim_day(session, site_id=site.id, local_date=day, owner=owner, now=now):
            continue
        since = await digest.last_built(session, site_id=site.id) or now - timedelta(hours=24)
        built = await digest.build_in(session, settings=settings, site_id=site.id, now=now, since=since)
        await digest.mark_built(session, site_id=site.id, at=now)
        rows = []
        for recipient in site.alert_chats():
            parts = len(digest_texts(settings, built, recipient))
            rows += [dict(kind=KIND, lane=NORMAL_LANE, channel=recipient.channel, address=recipient.address,
                          patient_id=None, dose_day_id=None, alert_id=None, due_at=now, state=OutboxState.PENDING,
                          priority=PRIORITY, attempts=0, resends=0, created_at=now,
                          payload={"site": site.id, "day": day.isoformat(), "since": since.isoformat(),
                                   "at": now.isoformat(), "part": part, "parts": parts},
                          dedupe_key=dedupe_key(site.id, day, recipient, part))
                     for part in range(parts)]
        insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
        await session.exec(insert(Outbox).on_conflict_do_nothing(index_elements=["dedupe_key"]), params=rows)
        queued += 1
    return queued


def digest_texts(settings: Settings, built: digest.Digest, reader: Recipient) -> list[str]:
    """The digest as `reader` reads it (their language), in message-sized parts."""
    return digest_text(reader_translator(settings, reader, built.site_id), settings, built)


def part_text(texts: list[str], *, part: int, parts: int) -> str | None:
    """Part `part` of the `parts` queued, from the digest as composed now. A digest that grew since
    it was queued puts the rest in its last part; one that shrank leaves its last parts empty."""
    if part >= len(texts):
        return None
    if part == parts - 1:
        return "\n".join(texts[part:])
    return texts[part]
