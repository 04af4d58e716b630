"""Quiet hours: the night in the patient's own zone when nothing that can wait is sent."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.hours import QuietHours

UTC = timezone.utc
SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
NIGHT = QuietHours(time(22, 30), time(6, 30))  # spans midnight (the default)
NAP = QuietHours(time(13, 0), time(14, 0))  # inside one day


def local(tz, *args):
    return datetime(*args, tzinfo=tz)


@pytest.mark.parametrize("hours, wall, quiet", [
    (NIGHT, (2026, 12, 1, 22, 29), False), (NIGHT, (2026, 12, 1, 22, 30), True),
    (NIGHT, (2026, 12, 2, 0, 0), True), (NIGHT, (2026, 12, 2, 6, 29), True), (NIGHT, (2026, 12, 2, 6, 30), False),
    (NAP, (2026, 12, 1, 12, 59), False), (NAP, (2026, 12, 1, 13, 0), True), (NAP, (2026, 12, 1, 14, 0), False),
])
def test_contains_reads_the_wall_clock_of_the_zone(hours, wall, quiet):
    instant = local(SHANGHAI, *wall).astimezone(UTC)
    assert hours.contains(instant, SHANGHAI) is quiet
    assert hours.after(instant, SHANGHAI) == instant if not quiet else hours.after(instant, SHANGHAI) > instant


def test_after_is_the_end_of_this_nights_quiet_hours():
    assert NIGHT.after(local(SHANGHAI, 2026, 12, 1, 23, 0), SHANGHAI) == local(SHANGHAI, 2026, 12, 2, 6, 30)
    assert NIGHT.after(local(SHANGHAI, 2026, 12, 2, 1, 0), SHANGHAI) == local(SHANGHAI, 2026, 12, 2, 6, 30)
    assert NAP.after(local(SHANGHAI, 2026, 12, 1, 13, 30), SHANGHAI) == local(SHANGHAI, 2026, 12, 1, 14, 0)


def test_an_end_in_the_dst_gap_is_the_first_instant_after_it():
    early = QuietHours(time(22, 0), time(2, 30))  # 02:30 does not exist in Berlin on 2027-03-28
    assert early.after(local(BERLIN, 2027, 3, 28, 1, 0), BERLIN) == datetime(2027, 3, 28, 1, 0, tzinfo=UTC)  # 03:00 CEST


@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31)),
       st.sampled_from([SHANGHAI, BERLIN, ZoneInfo("America/New_York")]))
def test_after_always_lands_outside_quiet_hours_and_never_earlier(naive, tz):
    instant = naive.replace(tzinfo=UTC)
    moved = NIGHT.after(instant, tz)
    assert moved >= instant and not NIGHT.contains(moved, tz)
    assert moved - instant <= timedelta(hours=8, minutes=1)
