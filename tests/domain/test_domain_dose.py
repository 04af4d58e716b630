"""The dose-day state machine: one answer per day, late answers, corrections, day bounds."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.dose import (
    Answer,
    AnswerSource,
    DoseOutcome,
    DoseRuleError,
    DoseState,
    answer_dose,
    close_day,
    correct_dose,
    day_bounds,
    snooze_until,
    undo_missed,
)
from bot.domain.schedule import local_day_start

UTC = timezone.utc
SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")

CLOSES = datetime(2026, 12, 2, 16, 0, tzinfo=UTC)  # end of 2026-12-02 in Shanghai
LATE_UNTIL = CLOSES + timedelta(hours=24)


def answer(state, given_answer, now):
    return answer_dose(state=state, answer=given_answer, now=now, closes_at=CLOSES, late_until=LATE_UNTIL)


# --- answer_dose ---------------------------------------------------------------------------


@pytest.mark.parametrize("given_answer", list(Answer))
def test_on_time_answer(given_answer):
    now = CLOSES - timedelta(hours=8)
    outcome = answer(DoseState.SCHEDULED, given_answer, now)
    assert outcome == DoseOutcome(state=DoseState(given_answer.value), late=False, recorded_at=now)


def test_next_morning_answer_for_a_not_reported_day_is_late_with_its_real_time():
    now = CLOSES + timedelta(hours=8)
    outcome = answer(DoseState.NOT_REPORTED, Answer.TAKEN, now)
    assert outcome == DoseOutcome(state=DoseState.TAKEN, late=True, recorded_at=now)


def test_answer_after_close_before_the_sweep_is_late():
    now = CLOSES + timedelta(minutes=1)
    assert answer(DoseState.SCHEDULED, Answer.MISSED, now) == DoseOutcome(DoseState.MISSED, True, now)


def test_the_close_instant_itself_is_late():
    assert answer(DoseState.SCHEDULED, Answer.TAKEN, CLOSES).late is True


@pytest.mark.parametrize("state", [DoseState.SCHEDULED, DoseState.NOT_REPORTED])
def test_after_the_late_window_is_too_late(state):
    with pytest.raises(DoseRuleError) as caught:
        answer(state, Answer.TAKEN, LATE_UNTIL)
    assert caught.value.code == "too_late"


@pytest.mark.parametrize("state", [DoseState.TAKEN, DoseState.MISSED])
@pytest.mark.parametrize("now", [CLOSES - timedelta(hours=1), CLOSES + timedelta(hours=1), LATE_UNTIL + timedelta(days=3)])
def test_a_second_answer_is_refused(state, now):
    with pytest.raises(DoseRuleError) as caught:
        answer(state, Answer.TAKEN, now)
    assert caught.value.code == "already_answered"


def test_states_may_be_given_as_stored_strings():
    outcome = answer("scheduled", "taken", CLOSES - timedelta(hours=1))
    assert outcome.state is DoseState.TAKEN
    with pytest.raises(ValueError):
        answer("bogus", "taken", CLOSES)


def test_naive_instants_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        answer(DoseState.SCHEDULED, Answer.TAKEN, datetime(2026, 12, 2, 8, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        answer_dose(
            state=DoseState.SCHEDULED, answer=Answer.TAKEN, now=CLOSES, closes_at=datetime(2026, 12, 3), late_until=LATE_UNTIL
        )


def test_recorded_at_is_utc_even_for_an_offset_now():
    now = datetime(2026, 12, 2, 9, 0, tzinfo=SHANGHAI)
    outcome = answer(DoseState.SCHEDULED, Answer.TAKEN, now)
    assert outcome.recorded_at == now
    assert outcome.recorded_at.utcoffset() == timedelta(0)


def test_late_window_ending_before_close_is_a_programming_error():
    with pytest.raises(ValueError):
        answer_dose(state=DoseState.SCHEDULED, answer=Answer.TAKEN, now=CLOSES, closes_at=CLOSES, late_until=CLOSES - timedelta(1))


def test_dose_rule_error_codes():
    error = DoseRuleError("too_late", "too late")
    assert isinstance(error, ValueError) and error.code == "too_late"
    with pytest.raises(ValueError):
        DoseRuleError("nope", "unknown code")


# Any interleaving of taps, repeated taps, and the closing sweep records at most one answer.
actions = st.lists(
    st.one_of(
        st.tuples(st.just("answer"), st.sampled_from(list(Answer)), st.integers(-24 * 60, 3 * 24 * 60)),
        st.tuples(st.just("close"), st.none(), st.none()),
    ),
    max_size=12,
)


@settings(max_examples=300)
@given(steps=actions)
def test_no_sequence_of_answers_records_twice(steps):
    state = DoseState.SCHEDULED
    records = []
    minutes_sorted = sorted(step[2] for step in steps if step[0] == "answer")
    clock = iter(minutes_sorted)  # taps arrive in time order
    for kind, given_answer, _ in steps:
        if kind == "close":
            state = close_day(state=state)
            continue
        now = CLOSES + timedelta(minutes=next(clock))
        try:
            outcome = answer(state, given_answer, now)
        except DoseRuleError as error:
            if records:
                assert error.code == "already_answered"
            else:
                assert error.code == "too_late" and now >= LATE_UNTIL
            continue
        assert not records, "a second answer was accepted"
        assert outcome.late == (now >= CLOSES)
        assert outcome.recorded_at == now
        records.append(outcome)
        state = outcome.state
    assert len(records) <= 1
    if records:
        assert state is records[0].state


# --- close_day and correct_dose --------------------------------------------------------------


def test_close_day():
    assert close_day(state=DoseState.SCHEDULED) is DoseState.NOT_REPORTED
    for state in (DoseState.TAKEN, DoseState.MISSED, DoseState.NOT_REPORTED):
        assert close_day(state=state) is state


def test_correction_needs_a_reason():
    for reason in (None, "", " \n"):
        with pytest.raises(DoseRuleError) as caught:
            correct_dose(state=DoseState.NOT_REPORTED, new_state=DoseState.TAKEN, reason=reason)
        assert caught.value.code == "reason_required"


def test_correction_to_the_same_state_is_refused():
    with pytest.raises(DoseRuleError) as caught:
        correct_dose(state=DoseState.TAKEN, new_state=DoseState.TAKEN, reason="patient called")
    assert caught.value.code == "same_state"


def test_correction_cannot_reopen_a_day():
    with pytest.raises(DoseRuleError) as caught:
        correct_dose(state=DoseState.TAKEN, new_state=DoseState.SCHEDULED, reason="undo")
    assert caught.value.code == "not_open"


@pytest.mark.parametrize(
    ("state", "new_state"),
    [(old, new) for old in DoseState for new in DoseState if new is not DoseState.SCHEDULED and new is not old],
)
def test_valid_corrections(state, new_state):
    assert correct_dose(state=state, new_state=new_state, reason="diary checked at visit") is new_state


# --- day_bounds ------------------------------------------------------------------------------


def test_day_closes_at_next_local_midnight():
    assert day_bounds(local_date=date(2026, 12, 2), tz=SHANGHAI) == (CLOSES, LATE_UNTIL)


def test_dst_days_are_23_and_25_hours_long():
    spring_close, spring_late = day_bounds(local_date=date(2026, 3, 8), tz=NEW_YORK)
    assert spring_close == datetime(2026, 3, 9, 4, 0, tzinfo=UTC)
    assert spring_close - local_day_start(date(2026, 3, 8), NEW_YORK) == timedelta(hours=23)
    assert spring_late == spring_close + timedelta(hours=24)
    fall_close, _ = day_bounds(local_date=date(2026, 11, 1), tz=NEW_YORK)
    assert fall_close == datetime(2026, 11, 2, 5, 0, tzinfo=UTC)
    assert fall_close - local_day_start(date(2026, 11, 1), NEW_YORK) == timedelta(hours=25)


def test_configured_close_time_and_grace():
    closes, late = day_bounds(local_date=date(2026, 12, 2), tz=SHANGHAI, close_at=time(22, 0), late_grace_hours=12)
    assert closes == datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
    assert late == datetime(2026, 12, 3, 2, 0, tzinfo=UTC)


def test_close_at_midnight_or_negative_grace_is_refused():
    with pytest.raises(ValueError):
        day_bounds(local_date=date(2026, 12, 2), tz=SHANGHAI, close_at=time(0, 0))
    with pytest.raises(ValueError):
        day_bounds(local_date=date(2026, 12, 2), tz=SHANGHAI, late_grace_hours=-1)


ALL_ZONES = sorted(available_timezones())


@settings(max_examples=200, deadline=None)
@given(
    day=st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31)),
    tz=st.one_of(st.sampled_from(["America/New_York", "America/Santiago", "America/Nuuk"]), st.sampled_from(ALL_ZONES)).map(
        ZoneInfo
    ),
    grace=st.integers(0, 72),
)
def test_day_bounds_properties(day, tz, grace):
    closes, late = day_bounds(local_date=day, tz=tz, late_grace_hours=grace)
    start = local_day_start(day, tz)
    assert start < closes
    assert closes.astimezone(tz).date() > day  # the first instant that is no longer `day`
    assert (closes - timedelta(microseconds=1)).astimezone(tz).date() <= day
    assert late - closes == timedelta(hours=grace)
    assert closes.utcoffset() == timedelta(0)


# --- undo_missed and snooze_until --------------------------------------------------------------


@pytest.mark.parametrize("state, source", [(DoseState.SCHEDULED, None), (DoseState.TAKEN, AnswerSource.BUTTON),
                                           (DoseState.MISSED, AnswerSource.COORDINATOR)])
def test_only_the_patients_own_not_today_can_be_undone(state, source):
    # A second tap on "Undo" finds the day scheduled again: a refusal with a code, not a crash.
    with pytest.raises(DoseRuleError) as refused:
        undo_missed(state=state, source=source, now=CLOSES - timedelta(hours=1), closes_at=CLOSES)
    assert refused.value.code == "not_undoable"


def test_undo_reopens_the_day_until_it_closes():
    assert undo_missed(state=DoseState.MISSED, source=AnswerSource.BUTTON, now=CLOSES - timedelta(seconds=1),
                       closes_at=CLOSES) is DoseState.SCHEDULED
    with pytest.raises(DoseRuleError) as refused:
        undo_missed(state=DoseState.MISSED, source=AnswerSource.BUTTON, now=CLOSES, closes_at=CLOSES)
    assert refused.value.code == "closed"


def snooze(*, state=DoseState.SCHEDULED, snoozes=0, now=CLOSES - timedelta(hours=3)):
    return snooze_until(state=state, snoozes=snoozes, now=now, closes_at=CLOSES, minutes=30, max_snoozes=2)


def test_a_snooze_comes_back_after_the_configured_minutes():
    assert snooze() == CLOSES - timedelta(hours=2, minutes=30)
    assert snooze(snoozes=1) == CLOSES - timedelta(hours=2, minutes=30)


@pytest.mark.parametrize("kwargs, code", [
    (dict(snoozes=2), "no_more_snoozes"),
    (dict(now=CLOSES - timedelta(minutes=30)), "no_more_snoozes"),  # would come back as the day ends
    (dict(now=CLOSES), "too_late"),
    (dict(state=DoseState.TAKEN), "already"),
    (dict(state="missed"), "already"),
])
def test_a_snooze_is_refused(kwargs, code):
    with pytest.raises(DoseRuleError) as refused:
        snooze(**kwargs)
    assert refused.value.code == code
