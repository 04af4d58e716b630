"""The keyword safety net and site working hours (pure)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.hours import WorkingHours, in_working_hours, next_working_start, same_day_deadline, seen_today
from bot.domain.keywords import FeverRule, KeywordRule, raise_level, temperatures_c, triage_text
from bot.domain.triage import TriageLevel as L

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
UTC = timezone.utc
FEVER = FeverRule(("发烧", "发热", "fever", "temperature"), 38.0, L.EMERGENCY)
RULES = [KeywordRule("bleed", L.EMERGENCY, ("呕血", "vomiting blood")),
         KeywordRule("same", L.SAME_DAY, ("发烧", "fever", "尿血"))]


def test_fever_with_a_temperature_at_or_above_the_threshold_is_an_emergency():
    for text in ["我发烧了，39度", "发热 38.0℃", "ＦＥＶＥＲ ３９", "fever 102 F", "my temperature is 38,5"]:
        assert triage_text(text, RULES, FEVER).level is L.EMERGENCY, text
    for text in ["我发烧了，37.5度", "fever 99F", "I took 2 tablets at 39 past 8"]:
        assert triage_text(text, RULES, FEVER).level is not L.EMERGENCY, text


def test_keywords_pick_the_most_severe_level_and_a_non_match_is_none():
    assert triage_text("有点发烧", RULES, FEVER).level is L.SAME_DAY
    assert triage_text("I was VOMITING BLOOD and have a fever", RULES, FEVER).codes == ("bleed", "same")
    assert triage_text("hello, thank you", RULES, FEVER) == triage_text("", RULES, FEVER)
    assert triage_text("hello", RULES, FEVER).level is None


@given(st.text(max_size=60), st.sampled_from(["呕血", "vomiting blood"]))
def test_a_danger_word_is_never_lowered_by_anything_around_it(noise, word):
    assert triage_text(noise + word + noise, RULES, FEVER).level is L.EMERGENCY


def test_temperatures_ignore_numbers_that_are_not_body_temperatures():
    assert temperatures_c("39度, 2 tablets, 12:30, 100 yuan, 101.3F") == [39.0, 38.5]
    assert raise_level(None, L.SAME_DAY, L.LOG) is L.SAME_DAY and raise_level(None) is None


HOURS = WorkingHours(start=time(8), end=time(17, 30), weekdays=frozenset(range(5)),
                     holidays=frozenset({date(2027, 1, 1)}), tz=SHANGHAI)


def local(*args, tz=SHANGHAI):
    return datetime(*args, tzinfo=tz)


def test_next_working_start_skips_nights_weekends_and_holidays():
    assert next_working_start(HOURS, local(2026, 12, 2, 10, 0)) == local(2026, 12, 2, 10, 0)  # Wednesday
    assert next_working_start(HOURS, local(2026, 12, 2, 7, 0)) == local(2026, 12, 2, 8, 0)
    assert next_working_start(HOURS, local(2026, 12, 4, 22, 30)) == local(2026, 12, 7, 8, 0)  # Fri night → Mon
    assert next_working_start(HOURS, local(2026, 12, 31, 18, 0)) == local(2027, 1, 4, 8, 0)  # New Year, weekend
    assert seen_today(HOURS, local(2026, 12, 2, 7, 0)) and not seen_today(HOURS, local(2026, 12, 2, 18, 0))


def test_a_same_day_deadline_is_never_within_the_minimum_of_its_raising():
    at_least = timedelta(minutes=10)
    assert same_day_deadline(HOURS, local(2026, 12, 2, 10, 0), at_least=at_least) == local(2026, 12, 2, 17, 30)
    assert same_day_deadline(HOURS, local(2026, 12, 2, 17, 28), at_least=at_least) == local(2026, 12, 3, 17, 30)
    assert same_day_deadline(HOURS, local(2026, 12, 4, 22, 30), at_least=at_least) == local(2026, 12, 7, 17, 30)


@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)))
def test_working_start_is_at_work_and_never_earlier_than_now(now):
    hours = WorkingHours(start=time(8), end=time(17, 30), weekdays=frozenset(range(5)), holidays=frozenset(),
                         tz=BERLIN)  # a DST zone
    start = next_working_start(hours, now)
    assert start >= now and in_working_hours(hours, start)
    assert same_day_deadline(hours, now, at_least=timedelta(minutes=10)) > now + timedelta(minutes=10)
