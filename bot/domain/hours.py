"""Working hours of a study site: when a person reads a same-day alert or a relayed message.

Pure: the instant is a parameter, the zone and the calendar are data. Emergencies never wait for
working hours; these rules are for same-day wording, escalation deadlines and relay replies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.domain.schedule import local_due_instant


@dataclass(frozen=True)
class WorkingHours:
    start: time
    end: time
    weekdays: frozenset[int]  # 0 = Monday … 6 = Sunday
    holidays: frozenset[date]
    tz: ZoneInfo

    def is_working_day(self, day: date) -> bool:
        return day.weekday() in self.weekdays and day not in self.holidays


def _at(day: date, clock: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, clock, tzinfo=tz)


def in_working_hours(hours: WorkingHours, now: datetime) -> bool:
    local = now.astimezone(hours.tz)
    return hours.is_working_day(local.date()) and hours.start <= local.time() < hours.end


def next_working_start(hours: WorkingHours, now: datetime) -> datetime:
    """`now` if the team is at work, else the start of the next working period."""
    if in_working_hours(hours, now):
        return now
    local = now.astimezone(hours.tz)
    day = local.date()
    if hours.is_working_day(day) and local.time() < hours.start:
        return _at(day, hours.start, hours.tz)
    for offset in range(1, 370):
        candidate = day + timedelta(days=offset)
        if hours.is_working_day(candidate):
            return _at(candidate, hours.start, hours.tz)
    raise ValueError("no working day within a year: check the site's working days and holidays")


def working_period_end(hours: WorkingHours, now: datetime) -> datetime:
    """The end of the working period in progress at `now`, or of the next one."""
    start = next_working_start(hours, now).astimezone(hours.tz)
    return _at(start.date(), hours.end, hours.tz)


def same_day_deadline(hours: WorkingHours, now: datetime, *, at_least: timedelta) -> datetime:
    """When a same-day alert raised at `now` escalates: the end of this working period, or of the
    next one when less than `at_least` of this one is left (a 17:28 alert is not escalated at 17:30)."""
    end = working_period_end(hours, now)
    if end - max(now, next_working_start(hours, now)) < at_least:
        end = working_period_end(hours, end + timedelta(seconds=1))
    return end


def next_working_day_start(hours: WorkingHours, now: datetime) -> datetime:
    """The start of the first working period that begins after `now` (a daily reminder to the team)."""
    start = next_working_start(hours, now)
    if start > now:
        return start
    return next_working_start(hours, working_period_end(hours, now) + timedelta(seconds=1))


def seen_today(hours: WorkingHours, now: datetime) -> bool:
    """Whether the team will see something raised now within today's working hours."""
    start = next_working_start(hours, now)
    return start.astimezone(hours.tz).date() == now.astimezone(hours.tz).date()


@dataclass(frozen=True)
class QuietHours:
    """The night hours in a patient's own zone when the bot sends nothing it can hold back
    (follow-ups, companion questions, helper notices). `start > end` spans midnight."""

    start: time
    end: time

    def contains(self, instant: datetime, tz: ZoneInfo) -> bool:
        local = instant.astimezone(tz).time()
        if self.start > self.end:
            return self.start <= local or local < self.end
        return self.start <= local < self.end

    def after(self, instant: datetime, tz: ZoneInfo) -> datetime:
        """`instant`, or the end of the quiet hours it falls in (DST-safe: a wall time in a gap
        is the first instant after it)."""
        if not self.contains(instant, tz):
            return instant
        local = instant.astimezone(tz)
        day = local.date() if local.time() < self.end else local.date() + timedelta(days=1)
        return local_due_instant(day, self.end, tz)


__all__ = ["QuietHours", "WorkingHours", "in_working_hours", "next_working_day_start", "next_working_start", "same_day_deadline", "seen_today",
           "working_period_end"]
