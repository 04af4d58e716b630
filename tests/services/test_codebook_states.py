"""Every stored state the domain defines is explained in the export's codebook, so a data
manager never meets a code the codebook does not list."""

from __future__ import annotations

import pytest

from bot.domain.dose import AnswerSource, DoseState, PauseOrigin
from bot.domain.status import CourseStatus, HelperStatus, PatientStatus
from bot.services.codebook import codebook_rows


@pytest.mark.parametrize("field, states", [
    ("patients.status", PatientStatus), ("courses.status", CourseStatus), ("helpers.status", HelperStatus),
    ("dose_days.state", DoseState), ("dose_days.source", AnswerSource), ("patients.pause_origin", PauseOrigin),
])
def test_the_codebook_lists_every_state_of_the_domain(world, field, states):
    listed = {row["code"] for row in codebook_rows(world.rt.settings) if row["field"] == field}
    assert listed == {state.value for state in states}
