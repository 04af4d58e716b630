"""The service tier: use cases called directly on a real database (SQLite, and PostgreSQL in the
second pass) with an injected clock. No PTB, no sandbox: business rules are proved here in
milliseconds; the sandbox e2e tests keep the journeys through Telegram. `World.send` runs the
scheduler's lifecycle and courier against a recording fake channel (`fake_channel.py`)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from bot.channels.port import Account
from bot.config import settings_from_mapping
from bot.db.models import AuditLog, DoseDay, Outbox, Patient
from bot.services import courses, enrolment, invitations
from bot.services.clock import FakeClock
from bot.services.outbox import ALERT_LANE, NORMAL_LANE
from bot.services.runtime import Runtime
from scheduler.courier import Courier
from scheduler.lifecycle import advance, next_due
from tests.e2e.harness import EXAMPLE
from tests.services.fake_channel import RecordingChannel

UTC = timezone.utc
START = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


def service_settings(database_url: str, **overrides):
    data = tomllib.loads(EXAMPLE.read_text("utf-8"))
    # Never contacted: the service tier sends nothing itself (the outbox rows are the output).
    data["telegram"].update(token="123456:SERVICE-TIER", base_url="http://127.0.0.1:9/bot", bot_username="service_bot")
    data["database"]["url"] = database_url
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    return settings_from_mapping(data, env={})


@dataclass
class World:
    rt: Runtime
    clock: FakeClock
    _next_user: int = 900_000

    async def enrol(self, *, site: str = "NJ", locale: str = "en", reminder_time: str = "08:00") -> Patient:
        issued = await invitations.issue(self.rt, site_id=site)
        self._next_user += 1
        return await enrolment.complete(self.rt, account=Account.telegram(self._next_user), address=str(self._next_user),
                                        token=issued.token, locale=locale, reminder_time=reminder_time)

    def today(self, patient: Patient) -> date:
        return self.clock.now().astimezone(ZoneInfo(patient.timezone)).date()

    async def course(self, patient: Patient, *, chemo_end: date | None = None):
        return await courses.add_course(self.rt, subject_id=patient.subject_id,
                                      chemo_end=chemo_end or self.today(patient) - timedelta(days=1),
                                      actor_kind="operator", actor_id="cli")

    async def days(self, patient: Patient) -> list[DoseDay]:
        async with self.rt.session() as session:
            return list((await session.exec(select(DoseDay).where(DoseDay.patient_id == patient.id)
                                            .order_by(DoseDay.local_date))).all())

    async def day(self, patient: Patient, number: int) -> DoseDay:
        return next(d for d in await self.days(patient) if d.day == number)

    def at_local(self, patient: Patient, on: date, at: time) -> datetime:
        """Move the clock to a wall-clock instant in the patient's zone."""
        self.clock.set(datetime.combine(on, at, ZoneInfo(patient.timezone)))
        return self.clock.now()

    async def lifecycle(self) -> None:
        """What the scheduler's lifecycle would do at the clock's instant (close days, queue
        reminders and questions, repeat and escalate alerts), without sending anything. The
        pass reports pending course plans as work left (they hold reminders back until sent), so
        it is repeated a few times rather than until idle."""
        for _ in range(5):
            async with self.rt.session() as session:
                busy = await advance(session, settings=self.rt.settings, now=self.rt.now())
                await session.commit()
            if not busy:
                return

    async def send(self, *channels: RecordingChannel) -> int:
        """One scheduler pass at the clock's instant: the lifecycle, then the courier drains the
        alert lane and the normal lane through `channels` (a Telegram fake if none is given).
        Returns the rows handled."""
        await self.lifecycle()
        courier = Courier(self.rt, {c.name: c for c in channels or (RecordingChannel(),)}, worker_id="service-tier")
        handled = await courier.drain(lane=ALERT_LANE)
        return handled + await courier.drain(lane=NORMAL_LANE)

    async def next_due(self):
        """When the scheduler would wake next (the lifecycle's `next_due`)."""
        async with self.rt.session() as session:
            return await next_due(session, now=self.rt.now())

    async def audit_actions(self, **where) -> list[str]:
        async with self.rt.session() as session:
            query = select(AuditLog.action).order_by(AuditLog.id)
            for key, value in where.items():
                query = query.where(getattr(AuditLog, key) == value)
            return list((await session.exec(query)).all())

    async def outbox(self, *where) -> list[Outbox]:
        async with self.rt.session() as session:
            return list((await session.exec(select(Outbox).where(*where).order_by(Outbox.id))).all())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def world(engine, database_url, clock) -> World:
    return World(Runtime(service_settings(database_url), engine, clock), clock)
