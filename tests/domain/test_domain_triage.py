"""Symptom triage: the most severe selection wins; nothing unknown is guessed at."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.triage import TriageLevel, UnknownSymptom, triage

LEVELS = {
    "vomit_blood": TriageLevel.EMERGENCY,
    "fainting": TriageLevel.EMERGENCY,
    "urine_blood": TriageLevel.SAME_DAY,
    "jaundice": TriageLevel.SAME_DAY,
    "small_bruise": TriageLevel.LOG,
    "gum_brushing": TriageLevel.LOG,
}


def test_single_symptoms():
    assert triage(["small_bruise"], LEVELS) is TriageLevel.LOG
    assert triage(["urine_blood"], LEVELS) is TriageLevel.SAME_DAY
    assert triage(["fainting"], LEVELS) is TriageLevel.EMERGENCY


def test_most_severe_wins():
    assert triage(["small_bruise", "urine_blood"], LEVELS) is TriageLevel.SAME_DAY
    assert triage(iter(["gum_brushing", "vomit_blood", "jaundice"]), LEVELS) is TriageLevel.EMERGENCY


def test_empty_selection_is_refused():
    with pytest.raises(ValueError) as caught:
        triage([], LEVELS)
    assert not isinstance(caught.value, UnknownSymptom)


def test_unknown_code_is_refused_even_beside_an_emergency():
    with pytest.raises(UnknownSymptom) as caught:
        triage(["vomit_blood", "typo", "another"], LEVELS)
    assert isinstance(caught.value, ValueError)
    assert caught.value.codes == ("another", "typo")


def test_config_keys_are_accepted_as_levels():
    assert triage(["a", "b"], {"a": "log", "b": "same_day"}) is TriageLevel.SAME_DAY
    with pytest.raises(ValueError):
        triage(["a"], {"a": "urgent"})


def test_level_keys_round_trip():
    assert [level.key for level in TriageLevel] == ["log", "same_day", "emergency"]
    assert all(TriageLevel.from_key(level.key) is level for level in TriageLevel)
    assert TriageLevel.LOG < TriageLevel.SAME_DAY < TriageLevel.EMERGENCY


selections = st.lists(st.sampled_from(sorted(LEVELS)), min_size=1, max_size=8)


@given(selected=selections, data=st.data())
def test_max_wins_in_any_order(selected, data):
    expected = max(LEVELS[code] for code in selected)
    shuffled = data.draw(st.permutations(selected))
    assert triage(selected, LEVELS) is expected
    assert triage(shuffled, LEVELS) is expected


@given(selected=selections, extra=st.sampled_from(sorted(LEVELS)))
def test_adding_a_symptom_never_lowers_the_level(selected, extra):
    assert triage([*selected, extra], LEVELS) >= triage(selected, LEVELS)
