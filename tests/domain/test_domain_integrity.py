"""Pure rules added for trial data integrity: the correction rule, the enrolment state machine,
who may lift a pause, late and catch-up answers."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.correction import ExistingDay, plan_correction
from bot.domain.dose import (Answer, AnswerSource, DoseRuleError, DoseState, PauseOrigin, answer_dose, answer_late,
                             close_day, may_resume, over_at_registration)
from bot.domain.enrolment import EnrolStep, StepRefused, next_step
from bot.domain.schedule import course_span

UTC = timezone.utc
NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)


def days_of(chemo_end: date, states: list[DoseState], reminded: int = 0) -> list[ExistingDay]:
    first = chemo_end + timedelta(days=1)
    return [ExistingDay(i + 1, first + timedelta(days=i), state, i < reminded) for i, state in enumerate(states)]


def test_the_documented_example_leaves_no_hole():
    days = days_of(date(2026, 12, 1), [DoseState.TAKEN, DoseState.TAKEN] + [DoseState.SCHEDULED] * 12, reminded=2)
    plan = plan_correction(days=days, new=course_span(cycle=1, chemo_end=date(2026, 12, 3)))
    assert plan.dates() == [date(2026, 12, 4) + timedelta(days=i) for i in range(14)]
    assert [(k.local_date, k.day, k.out_of_window) for k in plan.kept] == [
        (date(2026, 12, 2), -1, True), (date(2026, 12, 3), 0, True)]
    assert len(plan.moved) == 12 and [c.day for c in plan.created] == [13, 14]
    assert plan.voided == ()


def test_answered_days_inside_the_new_span_count_there():
    days = days_of(date(2026, 12, 3), [DoseState.TAKEN, DoseState.MISSED] + [DoseState.SCHEDULED] * 12, reminded=2)
    plan = plan_correction(days=days, new=course_span(cycle=1, chemo_end=date(2026, 12, 1)))  # two days earlier
    assert [(k.local_date, k.day, k.out_of_window) for k in plan.kept] == [
        (date(2026, 12, 4), 3, False), (date(2026, 12, 5), 4, False)]
    assert plan.dates() == [date(2026, 12, 2) + timedelta(days=i) for i in range(14)]
    assert plan.created == ()


def test_a_reminded_unanswered_day_outside_the_new_span_is_voided():
    days = days_of(date(2026, 12, 1), [DoseState.TAKEN, DoseState.SCHEDULED] + [DoseState.SCHEDULED] * 12, reminded=2)
    plan = plan_correction(days=days, new=course_span(cycle=1, chemo_end=date(2026, 12, 4)))
    assert plan.voided == (2,)
    assert plan.dates() == [date(2026, 12, 5) + timedelta(days=i) for i in range(14)]


@given(states=st.lists(st.sampled_from([DoseState.SCHEDULED, DoseState.TAKEN, DoseState.MISSED,
                                        DoseState.NOT_REPORTED, DoseState.HELD]), min_size=14, max_size=14),
       reminded=st.integers(0, 14), shift=st.integers(-10, 10))
def test_every_correction_covers_each_new_date_exactly_once(states, reminded, shift):
    chemo_end = date(2026, 12, 1)
    days = days_of(chemo_end, states, reminded)
    new = course_span(cycle=1, chemo_end=chemo_end + timedelta(days=shift))
    if shift == 0:
        return
    plan = plan_correction(days=days, new=new)
    assert plan.dates() == [new.first_day + timedelta(days=i) for i in range(14)]  # no hole, no date twice
    live = [k.local_date for k in plan.kept] + [m.local_date for m in plan.moved] + [c.local_date for c in plan.created]
    assert len(live) == len(set(live))
    touched = {d.id for d in days if d.state is not DoseState.SCHEDULED}
    assert touched <= {k.id for k in plan.kept}  # every record is kept
    numbers = [k.day for k in plan.kept] + [m.day for m in plan.moved] + [c.day for c in plan.created]
    assert len(numbers) == len(set(numbers))


@pytest.mark.parametrize(("current", "received", "value", "expected"), [
    ("language", "lang", "en", EnrolStep.CONSENT),
    ("consent", "consent", "yes", EnrolStep.TIME),
    ("consent", "consent", "no", EnrolStep.DECLINED),
    ("time", "time", "08:00", EnrolStep.CONFIRM),
    ("confirm", "time", "21:00", EnrolStep.CONFIRM),
    ("confirm", "confirm", "yes", EnrolStep.DONE),
    ("confirm", "change", "time", EnrolStep.TIME),
    ("confirm", "change", "lang", EnrolStep.LANGUAGE),  # the consent is asked again after it
])
def test_enrolment_steps_in_order(current, received, value, expected):
    assert next_step(current, received, value) is expected


@pytest.mark.parametrize(("current", "received", "value", "code"), [
    (None, "lang", "en", "expired"),
    ("consent", "time", "08:00", "out_of_order"),  # the crafted consent skip
    ("consent", "confirm", "yes", "out_of_order"),
    ("language", "consent", "yes", "out_of_order"),
    ("time", "confirm", "yes", "out_of_order"),
    ("confirm", "lang", "en", "out_of_order"),
    ("time", "change", "lang", "out_of_order"),  # only the summary goes back
    ("consent", "change", "time", "out_of_order"),  # never around the consent
    ("confirm", "change", "consent", "invalid"),
    ("consent", "consent", "maybe", "invalid"),
    ("language", "lang", "", "invalid"),
    ("language", "zz", "x", "invalid"),
])
def test_enrolment_steps_out_of_order_are_refused(current, received, value, code):
    with pytest.raises(StepRefused) as refused:
        next_step(current, received, value)
    assert refused.value.code == code


def test_only_staff_lift_a_team_hold():
    assert may_resume(origin=PauseOrigin.PATIENT, actor_kind="patient")
    assert not may_resume(origin=PauseOrigin.TEAM, actor_kind="patient")
    assert may_resume(origin=PauseOrigin.TEAM, actor_kind="coordinator")
    assert may_resume(origin=None, actor_kind="patient")  # a pause from before origins were recorded


def test_close_during_a_hold_is_held_and_never_not_reported():
    assert close_day(state=DoseState.SCHEDULED, held=True) is DoseState.HELD
    assert close_day(state=DoseState.SCHEDULED) is DoseState.NOT_REPORTED
    assert close_day(state=DoseState.TAKEN, held=True) is DoseState.TAKEN


def test_excluded_days_take_no_answer_from_a_reminder():
    for state in (DoseState.HELD, DoseState.BEFORE_REGISTRATION, DoseState.CANCELLED):
        with pytest.raises(DoseRuleError) as refused:
            answer_dose(state=state, answer=Answer.TAKEN, now=NOW, closes_at=NOW + timedelta(hours=1),
                        late_until=NOW + timedelta(hours=2))
        assert refused.value.code == "not_open"


def test_late_and_catch_up_answers():
    outcome = answer_late(state=DoseState.NOT_REPORTED, answer=Answer.TAKEN, source=AnswerSource.LATE_QUESTION,
                          now=NOW, late_until=NOW + timedelta(hours=1))
    assert outcome.late and outcome.state is DoseState.TAKEN
    with pytest.raises(DoseRuleError):
        answer_late(state=DoseState.SCHEDULED, answer=Answer.TAKEN, source=AnswerSource.LATE_QUESTION, now=NOW,
                    late_until=NOW + timedelta(hours=1))
    with pytest.raises(DoseRuleError):  # the next-morning question is not the catch-up question
        answer_late(state=DoseState.BEFORE_REGISTRATION, answer=Answer.TAKEN, source=AnswerSource.LATE_QUESTION,
                    now=NOW, late_until=NOW + timedelta(hours=1))
    caught = answer_late(state=DoseState.BEFORE_REGISTRATION, answer=Answer.TAKEN, source=AnswerSource.CATCH_UP,
                         now=NOW, late_until=NOW - timedelta(days=3), closes_at=NOW - timedelta(days=4))
    assert caught.late and caught.state is DoseState.TAKEN
    with pytest.raises(DoseRuleError) as old:
        answer_late(state=DoseState.BEFORE_REGISTRATION, answer=Answer.TAKEN, source=AnswerSource.CATCH_UP,
                    now=NOW, late_until=NOW, closes_at=NOW - timedelta(days=8))
    assert old.value.code == "too_late"


def test_a_day_closed_before_registration_is_over():
    assert over_at_registration(closes_at=NOW, now=NOW)
    assert not over_at_registration(closes_at=NOW + timedelta(seconds=1), now=NOW)
