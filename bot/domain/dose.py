"""The dose-day state machine: one course day, at most one recorded answer.

    scheduled ──answer before close──▶ taken | missed            (late = False)
    scheduled ──close_day──▶ not_reported ──answer before late_until──▶ taken | missed (late = True)
    taken | missed ──second answer──▶ DoseRuleError("already_answered")
    any ──coordinator correction with a reason──▶ any answered/closed state (never back to scheduled)

"Missed" means the patient says they skipped the day: the next dose is the next course day's,
never a double dose. Callers pass `now`; nothing here reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from enum import StrEnum

from bot.domain._time import as_utc
from bot.domain.schedule import local_day_start, local_due_instant

DOSE_RULE_ERROR_CODES = frozenset({"already_answered", "too_late", "not_open", "reason_required", "same_state"})


class DoseState(StrEnum):
    SCHEDULED = "scheduled"
    TAKEN = "taken"
    MISSED = "missed"
    NOT_REPORTED = "not_reported"

    @property
    def answered(self) -> bool:
        return self in (DoseState.TAKEN, DoseState.MISSED)

    @property
    def closed(self) -> bool:
        """The day counts towards adherence (answered, or closed without an answer)."""
        return self is not DoseState.SCHEDULED


class Answer(StrEnum):
    TAKEN = "taken"
    MISSED = "missed"

    @property
    def state(self) -> DoseState:
        return DoseState(self.value)


class DoseRuleError(ValueError):
    """An answer or correction the rules refuse; `code` is stable for callers and translations."""

    def __init__(self, code: str, message: str) -> None:
        if code not in DOSE_RULE_ERROR_CODES:
            raise ValueError(f"unknown dose rule error code {code!r}")
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class DoseOutcome:
    state: DoseState
    late: bool
    recorded_at: datetime


def answer_dose(
    *, state: DoseState | str, answer: Answer | str, now: datetime, closes_at: datetime, late_until: datetime
) -> DoseOutcome:
    """The patient's one answer for a day. A second answer never records anything.

    On time: the day is still scheduled and open. Late: the day has closed (or was closed as
    not reported) and the late-report window is still running; the answer keeps its real time.
    """
    state = DoseState(state)
    answer = Answer(answer)
    now = as_utc(now, "now")
    closes_at = as_utc(closes_at, "closes_at")
    late_until = as_utc(late_until, "late_until")
    if late_until < closes_at:
        raise ValueError(f"late_until {late_until.isoformat()} is before closes_at {closes_at.isoformat()}")
    if state.answered:
        raise DoseRuleError("already_answered", f"this day is already recorded as {state.value}")
    if now >= late_until:
        raise DoseRuleError(
            "too_late", f"answers for this day were accepted until {late_until.isoformat()}; it is {now.isoformat()}"
        )
    # A not-reported day answered before its nominal close can only follow a coordinator
    # correction; it is then not late.
    return DoseOutcome(state=answer.state, late=now >= closes_at, recorded_at=now)


def close_day(*, state: DoseState | str) -> DoseState:
    """End of the day: an unanswered day becomes not reported; anything else stays."""
    state = DoseState(state)
    return DoseState.NOT_REPORTED if state is DoseState.SCHEDULED else state


def has_reason(reason: str | None) -> bool:
    """Corrections, cancellations and withdrawals need a non-blank reason for the audit trail."""
    return bool(reason and reason.strip())


def correct_dose(*, state: DoseState | str, new_state: DoseState | str, reason: str | None) -> DoseState:
    """Validate a coordinator's correction. The caller records it as a new event, never an overwrite."""
    state = DoseState(state)
    new_state = DoseState(new_state)
    if not has_reason(reason):
        raise DoseRuleError("reason_required", "a correction needs a reason for the audit trail")
    if new_state is DoseState.SCHEDULED:
        raise DoseRuleError("not_open", "a day cannot be corrected back to scheduled (re-opened)")
    if new_state is state:
        raise DoseRuleError("same_state", f"the day is already {state.value}")
    return new_state


def day_bounds(
    *, local_date: date, tz: tzinfo, close_at: time | None = None, late_grace_hours: int = 24
) -> tuple[datetime, datetime]:
    """(closes_at, late_until) in UTC for one local day.

    By default a day closes when the next local day starts (23 or 25 hours on DST days);
    `close_at` closes it earlier, at that local time on the same date. Late answers are taken
    for `late_grace_hours` of elapsed time after the close.
    """
    if late_grace_hours < 0:
        raise ValueError(f"late_grace_hours must not be negative, got {late_grace_hours}")
    if close_at is None:
        closes_at = local_day_start(local_date + timedelta(days=1), tz)
    else:
        if close_at == time(0):
            raise ValueError("close_at 00:00 would close the day as it starts; use None for the end of the day")
        closes_at = local_due_instant(local_date, close_at, tz)
    return closes_at, closes_at + timedelta(hours=late_grace_hours)


__all__ = [
    "Answer",
    "DoseOutcome",
    "DoseRuleError",
    "DoseState",
    "answer_dose",
    "close_day",
    "correct_dose",
    "day_bounds",
]
