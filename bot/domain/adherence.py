"""Adherence arithmetic over dose-day states.

Only days that are over (answered, or closed without an answer) are expected; today's and
future scheduled days are pending. "Not reported" is kept apart from "missed": one is an
unknown, the other a patient's statement. Days the patient could not answer — held by the study
team, or over before the course was registered — are counted apart and never expected;
cancelled days are no dose days at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.domain.dose import DoseState

MARKS = {
    DoseState.TAKEN: "✓",
    DoseState.MISSED: "✗",
    DoseState.NOT_REPORTED: "?",
    DoseState.SCHEDULED: "·",
    DoseState.HELD: "H",
    DoseState.BEFORE_REGISTRATION: "-",
    DoseState.CANCELLED: "",
}

NO_RATE_TEXT = "–"


@dataclass(frozen=True)
class Adherence:
    expected: int
    taken: int
    missed: int
    not_reported: int
    pending: int
    held: int = 0
    before_registration: int = 0

    def __post_init__(self) -> None:
        if min(self.expected, self.taken, self.missed, self.not_reported, self.pending, self.held,
               self.before_registration) < 0:
            raise ValueError(f"adherence counts cannot be negative: {self}")
        if self.expected != self.taken + self.missed + self.not_reported:
            raise ValueError(f"expected must equal taken + missed + not_reported: {self}")

    @property
    def rate(self) -> float | None:
        return self.taken / self.expected if self.expected else None

    def percent_text(self) -> str:
        """Whole percent, e.g. "93%"; "–" before any day is due.

        Never rounds to 100% unless every expected dose was taken, nor to 0% if any was.
        """
        if not self.expected:
            return NO_RATE_TEXT
        percent = (200 * self.taken + self.expected) // (2 * self.expected)  # round half up
        if self.taken < self.expected:
            percent = min(percent, 99)
        if self.taken > 0:
            percent = max(percent, 1)
        return f"{percent}%"


EMPTY = Adherence(expected=0, taken=0, missed=0, not_reported=0, pending=0)


def adherence(states: Iterable[DoseState | str]) -> Adherence:
    counts = dict.fromkeys(DoseState, 0)
    for state in states:
        counts[DoseState(state)] += 1
    taken, missed, not_reported = counts[DoseState.TAKEN], counts[DoseState.MISSED], counts[DoseState.NOT_REPORTED]
    return Adherence(
        expected=taken + missed + not_reported,
        taken=taken,
        missed=missed,
        not_reported=not_reported,
        pending=counts[DoseState.SCHEDULED],
        held=counts[DoseState.HELD],
        before_registration=counts[DoseState.BEFORE_REGISTRATION],
    )


def combine(items: Iterable[Adherence]) -> Adherence:
    """Sum of several courses, patients or sites (a pooled rate, not an average of rates)."""
    total = EMPTY
    for item in items:
        total = Adherence(
            expected=total.expected + item.expected,
            taken=total.taken + item.taken,
            missed=total.missed + item.missed,
            not_reported=total.not_reported + item.not_reported,
            pending=total.pending + item.pending,
            held=total.held + item.held,
            before_registration=total.before_registration + item.before_registration,
        )
    return total


def consecutive_unanswered(states_in_day_order: Sequence[DoseState | str]) -> int:
    """Missed or not-reported days at the end of the days that are over (trailing scheduled
    days are ignored); a taken day ends the run. Held, before-registration and cancelled days
    are not the patient's: they neither count nor break a run."""
    states = [DoseState(state) for state in states_in_day_order if not DoseState(state).excluded]
    while states and states[-1] is DoseState.SCHEDULED:
        states.pop()
    run = 0
    for state in reversed(states):
        if state not in (DoseState.MISSED, DoseState.NOT_REPORTED):
            break
        run += 1
    return run


def unanswered_run(states_in_day_order: Sequence[DoseState | str]) -> tuple[int, int | None]:
    """(length, index of its first day in the input) of the trailing unanswered run, so callers
    can name one alert per run by its first day however many days join it later."""
    indexed = [(i, DoseState(s)) for i, s in enumerate(states_in_day_order) if not DoseState(s).excluded]
    while indexed and indexed[-1][1] is DoseState.SCHEDULED:
        indexed.pop()
    first = None
    run = 0
    for index, state in reversed(indexed):
        if state not in (DoseState.MISSED, DoseState.NOT_REPORTED):
            break
        run, first = run + 1, index
    return run, first


def marks(states: Sequence[DoseState | str]) -> str:
    """One character per day, for a narrow phone screen: ✓ taken, ✗ missed, ? not reported, · to come,
    H held by the team, - before registration (cancelled days are not shown)."""
    return "".join(MARKS[DoseState(state)] for state in states)


__all__ = ["Adherence", "adherence", "combine", "consecutive_unanswered", "marks", "unanswered_run"]
