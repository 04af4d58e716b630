"""Adherence arithmetic over dose-day states.

Only days that are over (answered, or closed without an answer) are expected; today's and
future scheduled days are pending. "Not reported" is kept apart from "missed": one is an
unknown, the other a patient's statement.
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
}

NO_RATE_TEXT = "–"


@dataclass(frozen=True)
class Adherence:
    expected: int
    taken: int
    missed: int
    not_reported: int
    pending: int

    def __post_init__(self) -> None:
        if min(self.expected, self.taken, self.missed, self.not_reported, self.pending) < 0:
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
        )
    return total


def consecutive_unanswered(states_in_day_order: Sequence[DoseState | str]) -> int:
    """Missed or not-reported days at the end of the days that are over (trailing scheduled
    days are ignored); a taken day ends the run."""
    states = [DoseState(state) for state in states_in_day_order]
    while states and states[-1] is DoseState.SCHEDULED:
        states.pop()
    run = 0
    for state in reversed(states):
        if state not in (DoseState.MISSED, DoseState.NOT_REPORTED):
            break
        run += 1
    return run


def marks(states: Sequence[DoseState | str]) -> str:
    """One character per day, for a narrow phone screen: ✓ taken, ✗ missed, ? not reported, · to come."""
    return "".join(MARKS[DoseState(state)] for state in states)


__all__ = ["Adherence", "adherence", "combine", "consecutive_unanswered", "marks"]
