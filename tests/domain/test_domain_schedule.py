"""Course schedule: dates, DST-safe due instants, and the rules for adding and moving courses."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.schedule import (
    CourseSpan,
    ScheduleError,
    check_new_course,
    check_reanchor,
    course_day_number,
    course_span,
    local_day_start,
    local_due_instant,
    plan_course,
)

UTC = timezone.utc
NEW_YORK = ZoneInfo("America/New_York")
SHANGHAI = ZoneInfo("Asia/Shanghai")
ONE_MICROSECOND = timedelta(microseconds=1)

# Zones with the awkward cases: ordinary DST, a 30-minute DST, a gap over midnight, a gap at
# 23:00 that runs to the end of the day, a whole skipped date, and the trial's own zone.
AWKWARD_ZONES = [
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "America/Santiago",
    "America/Nuuk",
    "Pacific/Apia",
    "Asia/Shanghai",
]
ALL_ZONES = sorted(available_timezones())
zones = st.one_of(st.sampled_from(AWKWARD_ZONES), st.sampled_from(ALL_ZONES)).map(ZoneInfo)
chemo_ends = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def wall_exists(local: datetime, tz: ZoneInfo) -> bool:
    return wall(local.replace(tzinfo=tz).astimezone(UTC), tz) == local


def date_exists(day: date, tz: ZoneInfo) -> bool:
    """Brute force, independent of the code under test: does any instant fall on `day`?"""
    probe = datetime.combine(day, time(0), tzinfo=UTC) - timedelta(hours=15)
    end = probe + timedelta(hours=56)
    while probe < end:
        if probe.astimezone(tz).date() == day:
            return True
        probe += timedelta(minutes=15)
    return False


# --- local_due_instant -------------------------------------------------------------------


def test_shanghai_course_is_due_at_local_eight_each_day():
    doses = plan_course(chemo_end=date(2026, 12, 1), tz=SHANGHAI, reminder_time=time(8, 0))
    assert doses[0].day == 1
    assert doses[0].local_date == date(2026, 12, 2)
    assert doses[0].due_utc == utc(2026, 12, 2, 0, 0)
    assert doses[-1].day == 14
    assert doses[-1].local_date == date(2026, 12, 15)
    assert doses[-1].due_utc == utc(2026, 12, 15, 0, 0)


def test_spring_forward_gap_moves_to_the_end_of_the_gap():
    due = local_due_instant(date(2026, 3, 8), time(2, 30), NEW_YORK)
    assert due == utc(2026, 3, 8, 7, 0)
    assert due.astimezone(NEW_YORK).time() == time(3, 0)


def test_fall_back_fold_takes_the_first_occurrence():
    due = local_due_instant(date(2026, 11, 1), time(1, 30), NEW_YORK)
    assert due == utc(2026, 11, 1, 5, 30)
    assert due.astimezone(NEW_YORK).fold == 0


def test_half_hour_dst_gap_lord_howe():
    lord_howe = ZoneInfo("Australia/Lord_Howe")
    due = local_due_instant(date(2026, 10, 4), time(2, 15), lord_howe)
    assert due == utc(2026, 10, 3, 15, 30)
    assert due.astimezone(lord_howe).time() == time(2, 30)


def test_gap_at_midnight_starts_the_day_at_the_end_of_the_gap():
    santiago = ZoneInfo("America/Santiago")
    start = local_day_start(date(2026, 9, 6), santiago)
    assert start == utc(2026, 9, 6, 4, 0)
    assert start.astimezone(santiago).time() == time(1, 0)


def test_gap_running_to_the_end_of_the_day_keeps_the_dose_on_its_date():
    # Nuuk jumps from 23:00 (-02) straight to 00:00 (-01) the next day.
    nuuk = ZoneInfo("America/Nuuk")
    due = local_due_instant(date(2026, 3, 28), time(23, 30), nuuk)
    assert due.astimezone(nuuk).date() == date(2026, 3, 28)
    assert due.astimezone(nuuk).time() == time(22, 30)
    assert due < local_day_start(date(2026, 3, 29), nuuk)


def test_a_date_the_zone_skipped_gets_the_start_of_the_next_date():
    apia = ZoneInfo("Pacific/Apia")
    assert not date_exists(date(2011, 12, 30), apia)
    due = local_due_instant(date(2011, 12, 30), time(8, 0), apia)
    assert wall(due, apia) == datetime(2011, 12, 31, 0, 0)


def test_course_across_spring_forward_stays_one_dose_per_day():
    doses = plan_course(chemo_end=date(2026, 3, 1), tz=NEW_YORK, reminder_time=time(2, 30))
    by_date = {dose.local_date: dose.due_utc for dose in doses}
    assert by_date[date(2026, 3, 7)] == utc(2026, 3, 7, 7, 30)
    assert by_date[date(2026, 3, 8)] == utc(2026, 3, 8, 7, 0)
    assert by_date[date(2026, 3, 9)] == utc(2026, 3, 9, 6, 30)


def test_reminder_time_with_tzinfo_is_refused():
    with pytest.raises(ValueError):
        local_due_instant(date(2026, 1, 1), time(8, 0, tzinfo=UTC), SHANGHAI)


@settings(max_examples=200, deadline=None)
@given(chemo_end=chemo_ends, tz=zones, at=st.times())
def test_plan_course_properties(chemo_end, tz, at):
    doses = plan_course(chemo_end=chemo_end, tz=tz, reminder_time=at)

    assert len(doses) == 14
    assert [dose.day for dose in doses] == list(range(1, 15))
    assert doses[0].local_date == chemo_end + timedelta(days=1)
    assert doses[-1].local_date == chemo_end + timedelta(days=14)
    assert [dose.local_date for dose in doses] == [chemo_end + timedelta(days=n) for n in range(1, 15)]
    assert all(dose.due_utc.utcoffset() == timedelta(0) for dose in doses)
    assert all(a.due_utc < b.due_utc for a, b in zip(doses, doses[1:]))

    for dose in doses:
        local = dose.due_utc.astimezone(tz)
        if local.date() != dose.local_date:
            # Only a date the zone skipped entirely has no instant of its own.
            assert not date_exists(dose.local_date, tz)
            assert local.date() == dose.local_date + timedelta(days=1)
            continue
        wanted = datetime.combine(dose.local_date, at)
        if wall_exists(wanted, tz):
            assert local.replace(tzinfo=None) == wanted
            assert local.fold == 0  # the first occurrence of a repeated wall time
        else:
            _assert_gap_rule(dose.due_utc, wanted, tz)


def _assert_gap_rule(due: datetime, wanted: datetime, tz: ZoneInfo) -> None:
    got = wall(due, tz)
    if got > wanted:
        # The first instant after the gap: the instant just before it is before the wanted time.
        assert wall(due - ONE_MICROSECOND, tz) < wanted
    else:
        # The gap runs past the end of the day, so the day has no instant at or after `wanted`.
        assert got < wanted
        next_day_start = local_day_start(wanted.date() + timedelta(days=1), tz)
        assert wall(next_day_start - ONE_MICROSECOND, tz) < wanted


# Dates of real clock changes, to aim the search at the gaps and folds.
TRANSITION_DAYS = [
    ("America/New_York", date(2026, 3, 8)),
    ("America/New_York", date(2026, 11, 1)),
    ("Europe/London", date(2026, 3, 29)),
    ("Europe/London", date(2026, 10, 25)),
    ("Australia/Lord_Howe", date(2026, 10, 4)),
    ("Australia/Lord_Howe", date(2026, 4, 5)),
    ("America/Santiago", date(2026, 9, 6)),
    ("America/Santiago", date(2026, 4, 4)),
    ("America/Nuuk", date(2026, 3, 28)),
    ("America/Nuuk", date(2026, 10, 24)),
]


@settings(max_examples=200, deadline=None)
@given(case=st.sampled_from(TRANSITION_DAYS), at=st.times(), day_shift=st.integers(-1, 1))
def test_due_instant_on_transition_days(case, at, day_shift):
    tz = ZoneInfo(case[0])
    day = case[1] + timedelta(days=day_shift)
    wanted = datetime.combine(day, at)
    due = local_due_instant(day, at, tz)
    assert due.astimezone(tz).date() == day
    if wall_exists(wanted, tz):
        assert wall(due, tz) == wanted
        assert due.astimezone(tz).fold == 0  # the first occurrence of a repeated wall time
    else:
        _assert_gap_rule(due, wanted, tz)
    assert local_day_start(day, tz) <= due < local_day_start(day + timedelta(days=1), tz)


# --- spans and course rules ----------------------------------------------------------------


def span(cycle: int, chemo_end: date) -> CourseSpan:
    return course_span(cycle=cycle, chemo_end=chemo_end)


def test_course_span_is_day_after_chemo_end_for_fourteen_days():
    result = span(1, date(2026, 12, 1))
    assert result == CourseSpan(cycle=1, chemo_end=date(2026, 12, 1), first_day=date(2026, 12, 2), last_day=date(2026, 12, 15))
    assert result.days == 14


def test_course_span_honours_configured_shape():
    result = course_span(cycle=2, chemo_end=date(2026, 1, 10), course_days=7, start_offset_days=2)
    assert (result.first_day, result.last_day) == (date(2026, 1, 12), date(2026, 1, 18))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cycle": 0, "chemo_end": date(2026, 1, 1)},
        {"cycle": 1, "chemo_end": date(2026, 1, 1), "course_days": 0},
        {"cycle": 1, "chemo_end": date(2026, 1, 1), "start_offset_days": -1},
    ],
)
def test_course_span_rejects_nonsense(kwargs):
    with pytest.raises(ScheduleError) as caught:
        course_span(**kwargs)
    assert caught.value.code == "invalid"


def test_schedule_error_is_a_value_error_with_a_known_code():
    error = ScheduleError("overlap", "overlaps cycle 1")
    assert isinstance(error, ValueError)
    assert error.code == "overlap"
    assert str(error) == "overlaps cycle 1"
    with pytest.raises(ValueError):
        ScheduleError("oops", "not a code")


def test_course_day_number():
    course = span(1, date(2026, 12, 1))
    assert course_day_number(course.first_day, date(2026, 12, 1)) == 0
    assert course_day_number(course.first_day, date(2026, 12, 2)) == 1
    assert course_day_number(course.first_day, date(2026, 12, 15)) == 14 == course.days
    assert course_day_number(course.first_day, date(2026, 12, 16)) == 15


def test_new_course_after_the_last_is_accepted():
    first = span(1, date(2026, 1, 1))  # doses Jan 2..15
    check_new_course(chemo_end=date(2026, 1, 22), existing=[first])
    check_new_course(chemo_end=date(2026, 1, 15), existing=[first])  # Jan 16..29: adjacent is fine
    check_new_course(chemo_end=date(2026, 1, 1), existing=[])


def test_new_course_sharing_a_dose_day_is_an_overlap():
    first = span(1, date(2026, 1, 1))
    with pytest.raises(ScheduleError) as caught:
        check_new_course(chemo_end=date(2026, 1, 14), existing=[first])  # Jan 15 is shared
    assert caught.value.code == "overlap"
    assert caught.value.conflict == first
    assert "2026-01-15" in str(caught.value)


def test_new_course_before_an_existing_one_is_out_of_order():
    later = span(2, date(2026, 3, 1))
    with pytest.raises(ScheduleError) as caught:
        check_new_course(chemo_end=date(2026, 1, 1), existing=[later])
    assert caught.value.code == "out_of_order"


@settings(max_examples=200, deadline=None)
@given(existing_end=chemo_ends, gap=st.integers(-40, 40))
def test_new_course_rules_agree_with_date_arithmetic(existing_end, gap):
    existing = span(1, existing_end)
    new_end = existing_end + timedelta(days=gap)
    new = span(2, new_end)
    try:
        check_new_course(chemo_end=new_end, existing=[existing])
    except ScheduleError as error:
        shares_a_day = bool(set(_days(new)) & set(_days(existing)))
        assert error.code == ("overlap" if shares_a_day else "out_of_order")
        assert shares_a_day or new.first_day < existing.first_day
    else:
        assert new.first_day > existing.last_day


def _days(course: CourseSpan) -> list[date]:
    return [course.first_day + timedelta(days=n) for n in range(course.days)]


def test_reanchor_before_day_one_is_free():
    course = span(2, date(2026, 3, 1))  # Mar 2..15
    moved = check_reanchor(course=course, new_chemo_end=date(2026, 3, 8), today=date(2026, 3, 1), reason=None, others=[])
    assert moved == span(2, date(2026, 3, 8))


def test_reanchor_on_or_after_day_one_needs_a_reason():
    course = span(2, date(2026, 3, 1))
    for reason in (None, "", "   "):
        with pytest.raises(ScheduleError) as caught:
            check_reanchor(course=course, new_chemo_end=date(2026, 3, 3), today=date(2026, 3, 2), reason=reason, others=[])
        assert caught.value.code == "reason_required"
    moved = check_reanchor(
        course=course, new_chemo_end=date(2026, 3, 3), today=date(2026, 3, 2), reason="chemo ended later", others=[]
    )
    assert moved.first_day == date(2026, 3, 4)


def test_reanchor_that_puts_day_one_in_the_past_needs_a_reason():
    course = span(2, date(2026, 3, 10))  # not started on Mar 5
    with pytest.raises(ScheduleError) as caught:
        check_reanchor(course=course, new_chemo_end=date(2026, 3, 1), today=date(2026, 3, 5), reason=None, others=[])
    assert caught.value.code == "reason_required"


def test_reanchor_may_not_overlap_or_pass_another_course():
    first = span(1, date(2026, 1, 1))  # Jan 2..15
    second = span(2, date(2026, 1, 22))  # Jan 23..Feb 5
    with pytest.raises(ScheduleError) as caught:
        check_reanchor(course=second, new_chemo_end=date(2026, 1, 10), today=date(2026, 1, 16), reason="moved", others=[first, second])
    assert caught.value.code == "overlap"
    assert caught.value.conflict == first
    third = span(3, date(2026, 2, 12))
    with pytest.raises(ScheduleError) as caught:
        check_reanchor(course=third, new_chemo_end=date(2025, 12, 1), today=date(2025, 11, 1), reason=None, others=[first, second])
    assert caught.value.code == "out_of_order"


def test_reanchor_to_the_same_date_is_refused():
    course = span(1, date(2026, 3, 1))
    with pytest.raises(ScheduleError) as caught:
        check_reanchor(course=course, new_chemo_end=date(2026, 3, 1), today=date(2026, 2, 1), reason=None, others=[])
    assert caught.value.code == "invalid"
