"""A family helper's notices at the service tier (lifecycle + courier + a recording fake channel):
never in quiet hours (a notice that falls there waits for their end), and re-checked when sent
(a day answered late since is not reported to the helper). The journeys through Telegram
(consent screens, the helper's link, cut-off answers) stay in tests/e2e/test_companion_helpers.py."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from bot.channels.port import Account, Recipient
from bot.db.models import Outbox
from bot.domain.dose import Answer
from bot.services import doses, family
from bot.services.runtime import Runtime
from tests.services.conftest import World, service_settings
from tests.services.fake_channel import RecordingChannel

HELPER = 990_001


@pytest.fixture
async def helped(engine, database_url, clock):
    """An enrolled patient on day 1 of a course, who consented; a helper joined through their link."""
    world = World(Runtime(service_settings(database_url, helpers={"enabled": True}), engine, clock), clock)
    patient = await world.enrol()
    await world.course(patient)
    patient = await family.set_consent(world.rt, patient=patient, consent=True)
    issued = await family.invite_by_patient(world.rt, patient=patient)
    await family.start_joining(world.rt, account=Account.telegram(HELPER), token=issued.token, locale="en")
    await family.choose_language(world.rt, account=Account.telegram(HELPER), locale="en")
    await family.join(world.rt, account=Account.telegram(HELPER), address=str(HELPER))
    channel = RecordingChannel()
    await world.send(channel)  # the course plan
    await world.send(channel)  # then (the plan gone out) the helper's course-start notice
    return world, patient, channel


async def _not_reported_notice(world) -> Outbox:
    [row] = [r for r in await world.outbox(Outbox.kind == family.NOTICE_KIND)
             if r.payload.get("notice") == family.NOT_REPORTED]
    return row


async def _close_day_one(world, patient, channel) -> tuple[datetime, int]:
    """Day 1 closes at local midnight, in quiet hours: its notice waits for their end (06:30)."""
    day1 = await world.day(patient, 1)
    world.clock.set(day1.closes_at + timedelta(minutes=5))
    await world.send(channel)
    quiet_over = datetime.combine(day1.local_date + timedelta(days=1), time(6, 30), ZoneInfo(patient.timezone))
    return quiet_over.astimezone(timezone.utc), day1.id


async def test_a_not_reported_notice_waits_for_the_end_of_the_quiet_hours(helped):
    world, patient, channel = helped
    helper = Recipient.telegram(HELPER)
    notices = len(channel.messages(helper))
    assert notices == 1  # the course-start notice
    quiet_over, _ = await _close_day_one(world, patient, channel)
    row = await _not_reported_notice(world)
    assert (row.state, row.due_at) == ("pending", quiet_over)
    world.clock.set(quiet_over - timedelta(seconds=1))
    await world.send(channel)
    assert len(channel.messages(helper)) == notices
    world.clock.set(quiet_over)
    await world.send(channel)
    assert len(channel.messages(helper)) == notices + 1
    assert (await _not_reported_notice(world)).state == "sent"


async def test_a_day_answered_late_before_the_notice_goes_out_is_not_reported_to_the_helper(helped):
    world, patient, channel = helped
    helper = Recipient.telegram(HELPER)
    notices = len(channel.messages(helper))
    quiet_over, day1_id = await _close_day_one(world, patient, channel)
    world.clock.set(quiet_over - timedelta(minutes=10))
    await doses.answer(world.rt, account=Account.parse(patient.account_key), dose_day_id=day1_id,
                       choice=Answer.TAKEN, source="late_question")
    world.clock.set(quiet_over)
    await world.send(channel)
    row = await _not_reported_notice(world)
    assert (row.state, row.last_error) == ("skipped", "day answered since")
    assert len(channel.messages(helper)) == notices
