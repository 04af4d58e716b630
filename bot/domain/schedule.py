"""Course schedule: 14 daily doses starting the day after each cycle's chemotherapy ends.

Dates here are the patient's local calendar dates; instants are timezone-aware UTC datetimes.
Nothing reads the clock: `today` is always a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo

COURSE_DAYS = 14
START_OFFSET_DAYS = 1

SCHEDULE_ERROR_CODES = frozenset({"overlap", "out_of_order", "started", "reason_required", "invalid"})

_ONE_MICROSECOND = timedelta(microseconds=1)


class ScheduleError(ValueError):
    """A course cannot be created or moved as asked.

    `code` is stable for callers (and translations); the message is for logs and operators.
    `conflict` is the other course involved, when there is one.
    """

    def __init__(self, code: str, message: str, *, conflict: CourseSpan | None = None) -> None:
        if code not in SCHEDULE_ERROR_CODES:
            raise ValueError(f"unknown schedule error code {code!r}")
        super().__init__(message)
        self.code = code
        self.conflict = conflict


@dataclass(frozen=True)
class PlannedDose:
    day: int  # 1..course_days
    local_date: date
    due_utc: datetime


@dataclass(frozen=True)
class CourseSpan:
    cycle: int
    chemo_end: date
    first_day: date
    last_day: date

    def __post_init__(self) -> None:
        if self.cycle < 1:
            raise ScheduleError("invalid", f"cycle must be 1 or more, got {self.cycle}")
        if self.last_day < self.first_day:
            raise ScheduleError(
                "invalid", f"cycle {self.cycle}: last day {self.last_day} is before first day {self.first_day}"
            )
        if self.first_day < self.chemo_end:
            raise ScheduleError(
                "invalid",
                f"cycle {self.cycle}: first dosing day {self.first_day} is before chemotherapy end {self.chemo_end}",
            )

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    def overlaps(self, other: CourseSpan) -> bool:
        return self.first_day <= other.last_day and other.first_day <= self.last_day

    def describe(self) -> str:
        return f"cycle {self.cycle} ({self.first_day.isoformat()} to {self.last_day.isoformat()})"


def local_due_instant(local_date: date, at: time, tz: tzinfo) -> datetime:
    """The UTC instant at which the wall clock in `tz` shows `at` on `local_date`.

    - A wall time that happens twice (fall back) means its first occurrence.
    - A wall time skipped by a forward clock change (the DST gap) becomes the first instant
      after the gap, e.g. 02:30 on a spring-forward night in New York → 03:00 local.
    - Where the gap runs to the end of the local day (America/Nuuk jumps from 23:00 to 00:00),
      "after the gap" would be tomorrow; the dose stays on its own date by moving back by the
      gap's length instead (23:30 → 22:30), so a day never gets two doses and is never due
      after it has closed.
    - Only a date the zone skipped entirely (Pacific/Apia, 2011-12-30) has no instant of its
      own; it gets the first instant after the gap, the start of the next date.
    """
    if at.tzinfo is not None:
        raise ValueError("`at` is a local wall-clock time and must not carry a tzinfo")
    wall = datetime.combine(local_date, at)
    first = wall.replace(tzinfo=tz, fold=0).astimezone(timezone.utc)
    if _wall(first, tz) == wall:
        return first
    after_gap = _end_of_gap(wall, tz)
    if _wall(after_gap, tz).date() == local_date:
        return after_gap
    before_gap = wall.replace(tzinfo=tz, fold=1).astimezone(timezone.utc)
    if _wall(before_gap, tz).date() == local_date and before_gap < after_gap:
        return before_gap
    return after_gap


def local_day_start(local_date: date, tz: tzinfo) -> datetime:
    """The first instant of `local_date` in `tz` (midnight, or the end of a gap over midnight)."""
    return local_due_instant(local_date, time(0), tz)


def _wall(instant: datetime, tz: tzinfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def _end_of_gap(wall: datetime, tz: tzinfo) -> datetime:
    """First instant whose local wall time is later than the nonexistent `wall`.

    The two fold readings of a nonexistent wall time (PEP 495) bracket the transition; a
    binary search finds it to the microsecond.
    """
    readings = sorted(wall.replace(tzinfo=tz, fold=fold).astimezone(timezone.utc) for fold in (0, 1))
    low, high = readings
    # Widen defensively in case a zone's offsets do not bracket as PEP 495 describes.
    while _wall(low, tz) > wall:
        low -= timedelta(days=1)
    while _wall(high, tz) <= wall:
        high += timedelta(days=1)
    # Invariant: wall(low) <= wall (before the gap), wall(high) > wall (after it).
    steps_low, steps_high = 0, (high - low) // _ONE_MICROSECOND
    while steps_high - steps_low > 1:
        middle = (steps_low + steps_high) // 2
        if _wall(low + middle * _ONE_MICROSECOND, tz) > wall:
            steps_high = middle
        else:
            steps_low = middle
    return low + steps_high * _ONE_MICROSECOND


def _check_shape(course_days: int, start_offset_days: int) -> None:
    if course_days < 1:
        raise ScheduleError("invalid", f"a course needs at least one day, got course_days={course_days}")
    if start_offset_days < 0:
        # The protocol's day 1 is the day after chemotherapy ends (offset 1); config may say 0.
        raise ScheduleError("invalid", f"start_offset_days must be 0 or more, got {start_offset_days}")


def course_span(
    *, cycle: int, chemo_end: date, course_days: int = COURSE_DAYS, start_offset_days: int = START_OFFSET_DAYS
) -> CourseSpan:
    _check_shape(course_days, start_offset_days)
    first_day = chemo_end + timedelta(days=start_offset_days)
    return CourseSpan(
        cycle=cycle,
        chemo_end=chemo_end,
        first_day=first_day,
        last_day=first_day + timedelta(days=course_days - 1),
    )


def plan_course(
    *,
    chemo_end: date,
    tz: tzinfo,
    reminder_time: time,
    course_days: int = COURSE_DAYS,
    start_offset_days: int = START_OFFSET_DAYS,
) -> list[PlannedDose]:
    """One dose per local calendar day, days 1..course_days, due at the patient's reminder time."""
    span = course_span(cycle=1, chemo_end=chemo_end, course_days=course_days, start_offset_days=start_offset_days)
    doses = []
    for day in range(1, course_days + 1):
        local_date = span.first_day + timedelta(days=day - 1)
        doses.append(PlannedDose(day=day, local_date=local_date, due_utc=local_due_instant(local_date, reminder_time, tz)))
    return doses


def check_new_course(
    *,
    chemo_end: date,
    existing: Sequence[CourseSpan],
    course_days: int = COURSE_DAYS,
    start_offset_days: int = START_OFFSET_DAYS,
) -> None:
    """Refuse a new course that shares a dosing day with, or starts before, an existing one.

    `existing` are the patient's live courses (cancelled ones excluded by the caller).
    Courses are appended in time order, so a new course must start after all of them.
    """
    next_cycle = max((span.cycle for span in existing), default=0) + 1
    new = course_span(
        cycle=next_cycle, chemo_end=chemo_end, course_days=course_days, start_offset_days=start_offset_days
    )
    for span in sorted(existing, key=lambda s: s.first_day):
        if new.overlaps(span):
            raise ScheduleError(
                "overlap",
                f"a course after chemotherapy ending {chemo_end.isoformat()} would run "
                f"{new.first_day.isoformat()} to {new.last_day.isoformat()}, overlapping {span.describe()}",
                conflict=span,
            )
    for span in sorted(existing, key=lambda s: s.first_day):
        if new.first_day < span.first_day:
            raise ScheduleError(
                "out_of_order",
                f"a course starting {new.first_day.isoformat()} would come before {span.describe()}; "
                "new courses must follow the existing ones",
                conflict=span,
            )


def check_reanchor(
    *,
    course: CourseSpan,
    new_chemo_end: date,
    today: date,
    reason: str | None,
    others: Sequence[CourseSpan],
    course_days: int = COURSE_DAYS,
    start_offset_days: int = START_OFFSET_DAYS,
) -> CourseSpan:
    """Validate moving `course` to a corrected chemotherapy end date; return the new span.

    Free while neither the current nor the new schedule has reached day 1 (`today` is the
    patient's local date). Once dosing has begun, or if the move would put day 1 in the past,
    it is a correction of the record and needs a reason. The moved course may not share a
    dosing day with another course, nor change places with one.
    """
    new = course_span(
        cycle=course.cycle, chemo_end=new_chemo_end, course_days=course_days, start_offset_days=start_offset_days
    )
    if new == course:
        raise ScheduleError(
            "invalid", f"cycle {course.cycle} is already anchored to chemotherapy end {new_chemo_end.isoformat()}"
        )
    started = today >= course.first_day or new.first_day < today
    if started and not (reason and reason.strip()):
        raise ScheduleError(
            "reason_required",
            f"{course.describe()} has begun or would begin in the past (today is {today.isoformat()}); "
            "moving it is a correction and needs a reason",
        )
    neighbours = sorted((s for s in others if s.cycle != course.cycle), key=lambda s: s.first_day)
    for span in neighbours:
        if new.overlaps(span):
            raise ScheduleError(
                "overlap",
                f"cycle {course.cycle} moved to {new.first_day.isoformat()} to {new.last_day.isoformat()} "
                f"would overlap {span.describe()}",
                conflict=span,
            )
    for span in neighbours:
        if (span.cycle < course.cycle) != (span.first_day < new.first_day):
            raise ScheduleError(
                "out_of_order",
                f"cycle {course.cycle} moved to start {new.first_day.isoformat()} would change places "
                f"with {span.describe()}",
                conflict=span,
            )
    return new


def course_day_number(first_day: date, local_date: date) -> int:
    """The course day number of `local_date`: 1 on the course's first day, counted on from there
    (0 or less before it, past the course's length after it: a day answered outside a corrected
    course keeps its place relative to the new one)."""
    return (local_date - first_day).days + 1


__all__ = [
    "COURSE_DAYS",
    "START_OFFSET_DAYS",
    "CourseSpan",
    "PlannedDose",
    "ScheduleError",
    "check_new_course",
    "check_reanchor",
    "course_day_number",
    "course_span",
    "local_day_start",
    "local_due_instant",
    "plan_course",
]
