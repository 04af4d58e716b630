"""Adherence counts, rates, runs of unanswered days and the compact diary row."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.adherence import Adherence, adherence, combine, consecutive_unanswered, marks, unanswered_run
from bot.domain.dose import DoseState

T, M, N, S = DoseState.TAKEN, DoseState.MISSED, DoseState.NOT_REPORTED, DoseState.SCHEDULED
state_lists = st.lists(st.sampled_from(list(DoseState)), max_size=40)


def test_counts_keep_not_reported_apart_and_pending_out_of_expected():
    result = adherence([T, T, M, N, T, S, S])
    assert result == Adherence(expected=5, taken=3, missed=1, not_reported=1, pending=2)
    assert result.rate == pytest.approx(0.6)
    assert result.percent_text() == "60%"


def test_stored_strings_are_accepted():
    assert adherence(["taken", "not_reported"]).not_reported == 1


def test_nothing_due_yet_has_no_rate():
    result = adherence([S, S])
    assert result.expected == 0 and result.rate is None
    assert result.percent_text() == "–"
    assert adherence([]).rate is None


@pytest.mark.parametrize(
    ("taken", "expected", "text"),
    [(13, 14, "93%"), (14, 14, "100%"), (0, 14, "0%"), (199, 200, "99%"), (1, 300, "1%"), (1, 2, "50%")],
)
def test_percent_text_rounds_without_claiming_perfect_or_zero(taken, expected, text):
    result = Adherence(expected=expected, taken=taken, missed=expected - taken, not_reported=0, pending=0)
    assert result.percent_text() == text


def test_inconsistent_counts_are_refused():
    with pytest.raises(ValueError):
        Adherence(expected=3, taken=1, missed=1, not_reported=0, pending=0)


def test_combine_pools_counts():
    site = combine([adherence([T, T, M]), adherence([N, S]), adherence([])])
    assert site == Adherence(expected=4, taken=2, missed=1, not_reported=1, pending=1)
    assert combine([]) == Adherence(0, 0, 0, 0, 0)


@pytest.mark.parametrize(
    ("states", "run"),
    [
        ([], 0),
        ([T, T], 0),
        ([T, M], 1),
        ([T, M, N], 2),
        ([M, N, T], 0),
        ([T, N, M, S, S], 2),
        ([S, S], 0),
        ([N, N, N], 3),
    ],
)
def test_consecutive_unanswered(states, run):
    assert consecutive_unanswered(states) == run


def test_marks():
    assert marks([T, M, N, S]) == "✓✗?·"
    assert marks([]) == ""


@given(states=state_lists)
def test_adherence_properties(states):
    result = adherence(states)
    assert result.taken + result.missed + result.not_reported == result.expected
    assert result.expected + result.pending + result.held + result.before_registration == \
        len([s for s in states if s is not DoseState.CANCELLED])
    assert result.held == states.count(DoseState.HELD)
    assert result.pending == states.count(S)
    if result.expected:
        assert 0.0 <= result.rate <= 1.0
        assert re.fullmatch(r"\d{1,3}%", result.percent_text())
    else:
        assert result.rate is None


@given(states=state_lists, cut=st.integers(0, 40))
def test_combining_parts_equals_the_whole(states, cut):
    assert combine([adherence(states[:cut]), adherence(states[cut:])]) == adherence(states)


@given(states=state_lists)
def test_consecutive_unanswered_matches_a_plain_reading(states):
    closed = [s for s in states if not s.excluded]
    while closed and closed[-1] is S:
        closed.pop()
    text = "".join("u" if s in (M, N) else "x" for s in closed)
    assert consecutive_unanswered(states) == len(text) - len(text.rstrip("u"))


@given(states=state_lists)
def test_marks_has_one_character_per_day(states):
    row = marks(states)
    assert len(row) == len([s for s in states if s is not DoseState.CANCELLED])
    assert set(row) <= set("✓✗?·H-")


@pytest.mark.parametrize(
    ("states", "run"),
    [
        ([N, DoseState.HELD, DoseState.HELD, N], 2),  # a hold neither counts nor breaks a run
        ([DoseState.BEFORE_REGISTRATION] * 5 + [S], 0),  # days over before registration never count
        ([T, DoseState.HELD, DoseState.HELD, DoseState.HELD], 0),
        ([N, DoseState.CANCELLED, M], 2),
    ],
)
def test_days_that_were_not_the_patients_to_answer(states, run):
    assert consecutive_unanswered(states) == run
    assert unanswered_run(states)[0] == run


def test_unanswered_run_names_its_first_day():
    states = [T, N, DoseState.HELD, M, N, S]
    assert unanswered_run(states) == (3, 1)
    assert unanswered_run([T, S]) == (0, None)


def test_held_and_before_registration_are_counted_apart():
    counts = adherence([T, DoseState.HELD, DoseState.BEFORE_REGISTRATION, DoseState.CANCELLED, N])
    assert (counts.expected, counts.taken, counts.held, counts.before_registration) == (2, 1, 1, 1)
    assert counts.percent_text() == "50%"
