"""The dose-day state machine: one course day, at most one recorded answer.

    scheduled ──answer before close──▶ taken | missed            (late = False)
    scheduled ──close_day──▶ not_reported ──answer before late_until──▶ taken | missed (late = True)
    scheduled ──close_day during a team hold──▶ held              (never missed, never not reported)
    scheduled (already over when registered) ──▶ before_registration ──catch-up answer──▶ taken
    scheduled | not_reported ──course cancelled──▶ cancelled     (void: no reminders, no record)
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

DOSE_RULE_ERROR_CODES = frozenset({"already_answered", "too_late", "not_open", "reason_required", "same_state",
                                   "closed", "not_undoable", "already", "no_more_snoozes"})


class DoseState(StrEnum):
    SCHEDULED = "scheduled"
    TAKEN = "taken"
    MISSED = "missed"
    NOT_REPORTED = "not_reported"
    HELD = "held"  # closed while the study team held the drug: not the patient's to answer
    BEFORE_REGISTRATION = "before_registration"  # over before anyone told the patient of the course
    CANCELLED = "cancelled"  # voided with its course: no longer a dose day at all

    @property
    def answered(self) -> bool:
        return self in (DoseState.TAKEN, DoseState.MISSED)

    @property
    def closed(self) -> bool:
        """The day counts towards adherence (answered, or closed without an answer)."""
        return self in (DoseState.TAKEN, DoseState.MISSED, DoseState.NOT_REPORTED)

    @property
    def excluded(self) -> bool:
        """Not the patient's to answer: outside every adherence denominator and missed alert."""
        return self in (DoseState.HELD, DoseState.BEFORE_REGISTRATION, DoseState.CANCELLED)


class AnswerSource(StrEnum):
    """How a day's answer reached us (dose_day.source)."""

    BUTTON = "button"  # the day's own reminder, before the day closed
    LATE_QUESTION = "late_question"  # the next-morning question about a day that closed unanswered
    CATCH_UP = "catch_up"  # the catch-up question about days over before the course was registered
    COORDINATOR = "coordinator"  # a coordinator's correction


class PauseOrigin(StrEnum):
    """Who paused the reminders: the patient (/stop) or the study team (a drug hold)."""

    PATIENT = "patient"
    TEAM = "team"


def may_resume(*, origin: PauseOrigin | str | None, actor_kind: str) -> bool:
    """A patient may lift only their own pause; a team hold is lifted only by staff."""
    if actor_kind == "patient":
        return PauseOrigin(origin or PauseOrigin.PATIENT) is PauseOrigin.PATIENT
    return True


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
    if state.excluded:
        raise DoseRuleError("not_open", f"this day is {state.value}; it takes no answer")
    if now >= late_until:
        raise DoseRuleError(
            "too_late", f"answers for this day were accepted until {late_until.isoformat()}; it is {now.isoformat()}"
        )
    # A not-reported day answered before its nominal close can only follow a coordinator
    # correction; it is then not late.
    return DoseOutcome(state=answer.state, late=now >= closes_at, recorded_at=now)


def close_day(*, state: DoseState | str, held: bool = False) -> DoseState:
    """End of the day: an unanswered day becomes not reported, or held if the study team held
    the drug when it closed; anything else stays."""
    state = DoseState(state)
    if state is not DoseState.SCHEDULED:
        return state
    return DoseState.HELD if held else DoseState.NOT_REPORTED


CATCH_UP_DAYS = 7  # the catch-up question asks about course days at most this many days back


def answer_late(
    *, state: DoseState | str, answer: Answer | str, source: AnswerSource | str, now: datetime, late_until: datetime,
    closes_at: datetime | None = None,
) -> DoseOutcome:
    """An answer to a question about a day that is over: the next-morning question (a day closed
    unanswered, until `late_until`) or the catch-up question (a day over before registration)."""
    state = DoseState(state)
    answer = Answer(answer)
    source = AnswerSource(source)
    if state.answered:
        raise DoseRuleError("already_answered", f"this day is already recorded as {state.value}")
    if source is AnswerSource.CATCH_UP:
        if state is not DoseState.BEFORE_REGISTRATION:
            raise DoseRuleError("not_open", f"the catch-up question is only about days before registration, not {state.value}")
        if closes_at is not None and not catch_up_allowed(closes_at=closes_at, now=now):
            raise DoseRuleError("too_late", f"the catch-up question covers only the last {CATCH_UP_DAYS} days")
        return DoseOutcome(state=answer.state, late=True, recorded_at=as_utc(now, "now"))
    if state is not DoseState.NOT_REPORTED:
        raise DoseRuleError("not_open", f"the next-morning question is only about unreported days, not {state.value}")
    if as_utc(now, "now") >= as_utc(late_until, "late_until"):
        raise DoseRuleError("too_late", f"answers for this day were accepted until {late_until.isoformat()}")
    return DoseOutcome(state=answer.state, late=True, recorded_at=as_utc(now, "now"))


def catch_up_allowed(*, closes_at: datetime, now: datetime) -> bool:
    """Whether a day over before registration is recent enough to ask the patient about."""
    return as_utc(closes_at, "closes_at") > as_utc(now, "now") - timedelta(days=CATCH_UP_DAYS)


def over_at_registration(*, closes_at: datetime, now: datetime) -> bool:
    """A day already closed when its course is registered was never the patient's to answer."""
    return as_utc(closes_at, "closes_at") <= as_utc(now, "now")


def undo_missed(*, state: DoseState | str, source: AnswerSource | str | None, now: datetime,
                closes_at: datetime) -> DoseState:
    """The patient takes back their own "Not today" while the day is still open: the day is
    open again (scheduled), so a later "Taken" counts. Nothing else can be undone by a patient."""
    state = DoseState(state)
    if state is not DoseState.MISSED or source != AnswerSource.BUTTON:
        raise DoseRuleError("not_undoable", f"only the patient's own 'not today' can be undone, not {state.value}")
    if as_utc(now, "now") >= as_utc(closes_at, "closes_at"):
        raise DoseRuleError("closed", "the day is over: ask the study team to correct it")
    return DoseState.SCHEDULED


def snooze_until(*, state: DoseState | str, snoozes: int, now: datetime, closes_at: datetime,
                 minutes: int, max_snoozes: int) -> datetime:
    """When a "remind me later" comes back: `minutes` from now, if the day is still open, the
    patient has snoozes left and the day will still be open then (no snooze past the day's end)."""
    state, now, closes_at = DoseState(state), as_utc(now, "now"), as_utc(closes_at, "closes_at")
    if state is not DoseState.SCHEDULED:
        raise DoseRuleError("already", f"the day is already {state.value}")
    if now >= closes_at:
        raise DoseRuleError("too_late", "the day is over")
    until = now + timedelta(minutes=minutes)
    if snoozes >= max_snoozes or until >= closes_at:
        raise DoseRuleError("no_more_snoozes", f"{snoozes} of {max_snoozes} snoozes used, or the day ends first")
    return until


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
    "AnswerSource",
    "PauseOrigin",
    "answer_late",
    "catch_up_allowed",
    "CATCH_UP_DAYS",
    "may_resume",
    "over_at_registration",
    "DoseOutcome",
    "DoseRuleError",
    "DoseState",
    "answer_dose",
    "snooze_until",
    "close_day",
    "correct_dose",
    "day_bounds",
]
