"""The morning digest's queueing rules at the service tier: the site-local digest time in a zone
with daylight saving time, once per site and local day, never sent late after a long outage,
and composed from the window fixed when it was queued."""

from __future__ import annotations

import tomllib
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from bot.config import settings_from_mapping
from bot.db.models import Outbox
from bot.services.clock import FakeClock
from bot.services.runtime import Runtime
from scheduler import compose
from scheduler.digests import digest_instant, next_digest, queue_digests
from tests.e2e.harness import EXAMPLE

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")  # summer time ends on 25 Oct 2026 (03:00 CEST → 02:00 CET)


def berlin_settings(database_url: str):
    data = tomllib.loads(EXAMPLE.read_text("utf-8"))
    data["telegram"].update(token="123456:SERVICE-TIER", base_url="http://127.0.0.1:9/bot", bot_username="service_bot")
    data["database"]["url"] = database_url
    for site in data["sites"]:
        site["timezone"] = "Europe/Berlin"
    return settings_from_mapping(data, env={})


@pytest.fixture
async def berlin(engine, database_url):
    clock = FakeClock(datetime(2026, 10, 24, 4, 0, tzinfo=UTC))
    return Runtime(berlin_settings(database_url), engine, clock), clock


async def _queue(rt) -> int:
    async with rt.session() as session:
        queued = await queue_digests(session, settings=rt.settings, now=rt.now())
        await session.commit()
    return queued


async def _rows(rt) -> list[Outbox]:
    async with rt.session() as session:
        return list((await session.exec(select(Outbox).where(Outbox.kind == "digest").order_by(Outbox.id))).all())


def test_the_digest_instant_follows_the_sites_daylight_saving_time(database_url):
    settings = berlin_settings(database_url)
    site = settings.site("NJ")
    assert digest_instant(settings, site, date(2026, 10, 24)) == datetime(2026, 10, 24, 6, 30, tzinfo=UTC)  # CEST
    assert digest_instant(settings, site, date(2026, 10, 25)) == datetime(2026, 10, 25, 7, 30, tzinfo=UTC)  # CET
    assert next_digest(settings, now=datetime(2026, 10, 24, 6, 30, tzinfo=UTC)) == \
        datetime(2026, 10, 25, 7, 30, tzinfo=UTC)  # 25 hours later: the night had an hour more


async def test_the_digest_is_queued_at_local_time_across_the_change_once_per_site_and_day(berlin):
    rt, clock = berlin
    clock.set(datetime(2026, 10, 25, 6, 30, tzinfo=UTC))  # 07:30 in Berlin (yesterday's UTC instant)
    assert await _queue(rt) == 0 and await _rows(rt) == []
    clock.set(datetime(2026, 10, 25, 7, 30, tzinfo=UTC))  # 08:30 in Berlin
    assert await _queue(rt) == 2  # both sites
    rows = await _rows(rt)
    readers = {s.id: sorted(str(c.telegram_id) for c in s.coordinators) for s in rt.settings.sites}
    assert {(r.payload["site"], r.address) for r in rows} == {(s, a) for s, ids in readers.items() for a in ids}
    assert all(r.payload["day"] == "2026-10-25" and r.lane == "normal" and r.state == "pending" for r in rows)
    assert len({r.dedupe_key for r in rows}) == len(rows)
    clock.set(datetime(2026, 10, 25, 7, 40, tzinfo=UTC))
    assert await _queue(rt) == 0  # a second pass, or a second process, queues nothing more
    assert len(await _rows(rt)) == len(rows)


async def test_a_digest_missed_by_a_long_outage_is_not_sent_late_and_the_next_covers_it(berlin):
    rt, clock = berlin
    clock.set(datetime(2026, 10, 24, 6, 30, tzinfo=UTC))
    assert await _queue(rt) == 2
    first = {r.payload["since"] for r in await _rows(rt)}
    clock.set(datetime(2026, 10, 25, 7, 30, tzinfo=UTC) + timedelta(minutes=16))  # down at 08:30 local
    assert await _queue(rt) == 0
    clock.set(datetime(2026, 10, 26, 7, 30, tzinfo=UTC))
    assert await _queue(rt) == 2
    latest = [r for r in await _rows(rt) if r.payload["day"] == "2026-10-26"]
    assert {r.payload["since"] for r in latest} == {"2026-10-24T06:30:00+00:00"}  # from the last one sent
    assert first == {"2026-10-23T06:30:00+00:00"}  # none before: the day before it


async def test_the_digest_is_composed_when_sent_in_its_readers_language(berlin):
    rt, clock = berlin
    clock.set(datetime(2026, 10, 24, 6, 30, tzinfo=UTC))
    await _queue(rt)
    rows = await _rows(rt)
    async with rt.session() as session:
        loaded = await compose.load(session, rows, now=rt.now(), settings=rt.settings)
    locales = {str(c.telegram_id): c.locale for s in rt.settings.sites for c in s.coordinators}
    for row in rows:
        message = compose.prepare(loaded, settings=rt.settings, row=row, now=rt.now())
        name = rt.settings.site(row.payload["site"]).name(locales[row.address])
        assert name in message.text and ("每日汇总" in message.text) == (locales[row.address] == "zh_Hans")
