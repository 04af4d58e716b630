"""The correction rule: what happens to a course's days when its chemotherapy end date is corrected.

Written out for the study team in docs/corrections.md; the coordinator sees the outcome as a
preview before confirming. One rule, applied day by day:

1. The corrected course is the protocol's days from the new chemotherapy end + 1 (`new`).
2. A day that holds a record (answered, closed, held, before registration) keeps its date and
   its record. Inside the new span it counts as that date's course day; outside it, it is kept
   and marked out-of-window (it no longer counts).
3. A day that was reminded but not answered keeps its date inside the new span; outside it, it
   is voided (its buttons are removed).
4. Untouched days (never reminded, never answered) move, in date order, onto the dates of the
   new span that no kept day occupies; dates still free get new days.

So no date of the new span is left without a dose day, and no date gets two. Every day's
number is its position relative to the new first day (out-of-window days: 0, -1, … before,
15, 16, … after). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from bot.domain.dose import DoseState
from bot.domain.schedule import CourseSpan, course_day_number


@dataclass(frozen=True)
class ExistingDay:
    id: int
    local_date: date
    state: DoseState
    reminded: bool  # a reminder was queued or the patient snoozed it


@dataclass(frozen=True)
class KeptDay:
    id: int
    local_date: date
    day: int
    out_of_window: bool


@dataclass(frozen=True)
class MovedDay:
    id: int
    old_date: date
    local_date: date
    day: int


@dataclass(frozen=True)
class NewDay:
    local_date: date
    day: int


@dataclass(frozen=True)
class CorrectionPlan:
    new: CourseSpan
    kept: tuple[KeptDay, ...]
    moved: tuple[MovedDay, ...]
    created: tuple[NewDay, ...]
    voided: tuple[int, ...]

    @property
    def out_of_window(self) -> tuple[KeptDay, ...]:
        return tuple(k for k in self.kept if k.out_of_window)

    def dates(self) -> list[date]:
        """Every live course date after the correction, in order (out-of-window days excluded)."""
        inside = [k.local_date for k in self.kept if not k.out_of_window]
        return sorted(inside + [m.local_date for m in self.moved] + [n.local_date for n in self.created])


def plan_correction(*, days: Sequence[ExistingDay], new: CourseSpan) -> CorrectionPlan:
    """Apply the rule to a course's live (not cancelled) days."""
    span_dates = [new.first_day + timedelta(days=i) for i in range(new.days)]
    inside = set(span_dates)
    kept, voided, untouched = [], [], []
    for day in sorted(days, key=lambda d: d.local_date):
        state = DoseState(day.state)
        if state is DoseState.CANCELLED:
            raise ValueError(f"day {day.id} is cancelled; pass live days only")
        if state is not DoseState.SCHEDULED:
            kept.append(KeptDay(day.id, day.local_date, course_day_number(new.first_day, day.local_date),
                                day.local_date not in inside))
        elif day.reminded:
            if day.local_date in inside:
                kept.append(KeptDay(day.id, day.local_date, course_day_number(new.first_day, day.local_date), False))
            else:
                voided.append(day.id)
        else:
            untouched.append(day)
    occupied = {k.local_date for k in kept}
    free = [d for d in span_dates if d not in occupied]
    moved = tuple(MovedDay(day.id, day.local_date, target, course_day_number(new.first_day, target))
                  for day, target in zip(untouched, free))
    created = tuple(NewDay(target, course_day_number(new.first_day, target)) for target in free[len(moved):])
    # Untouched days beyond the free dates cannot exist: every kept day inside the span was a
    # day of this course, so free dates ≥ untouched days. Checked, not assumed.
    if len(untouched) > len(free):
        raise ValueError(f"{len(untouched)} untouched days but only {len(free)} free dates")
    return CorrectionPlan(new=new, kept=tuple(kept), moved=moved, created=created, voided=tuple(voided))


__all__ = ["CorrectionPlan", "ExistingDay", "KeptDay", "MovedDay", "NewDay", "plan_correction"]
