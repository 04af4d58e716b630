"""Outbox vocabulary shared by services, scheduler and exports.

    pending → claimed → sending → sent | unknown | failed | skipped
    (claimed → pending when handed back; sending → pending once, marked as a possible resend)
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class OutboxState(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    SENDING = "sending"
    SENT = "sent"
    UNKNOWN = "unknown"
    FAILED = "failed"
    SKIPPED = "skipped"


IN_PROGRESS = (OutboxState.PENDING, OutboxState.CLAIMED, OutboxState.SENDING)


class OutboxKind(StrEnum):
    """What an outbox row carries; the courier composes each kind from the current state."""

    REMINDER = "reminder"  # the day's dose reminder, with its buttons
    FOLLOWUP = "followup"  # the same day, later, when still unanswered
    SNOOZE = "snooze"  # "remind me later" coming back
    REMINDER_CLOSE = "reminder_close"  # a day's reminder edited to its final state, without buttons
    LATE_QUESTION = "late_question"  # next morning: did you take yesterday's?
    CATCH_UP = "catch_up"  # about days over before the course was registered
    COURSE_PLAN = "course_plan"
    COURSE_END = "course_end"
    COURSE_CANCELLED = "course_cancelled"
    SYMPTOM_ADVICE = "symptom_advice"  # the emergency advice, retried if the handler's send failed
    STAFF_REPLY = "staff_reply"  # a coordinator's reply to a patient's message
    RELAY_MEDIA = "relay_media"  # a patient's voice note or photo, copied to the team
    CONMED_CHECK = "conmed_check"
    TABLET_COUNT = "tablet_count"
    VISIT_REMINDER = "visit_reminder"
    HELPER_NOTICE = "helper_notice"
    ALERT = "alert"  # a copy of an alert to one staff recipient
    ALERT_UPDATE = "alert_update"  # an edit of a delivered copy (a report or note was added)
    DIGEST = "digest"


class Lane(StrEnum):
    ALERT = "alert"  # safety alerts and the patient's emergency advice: never behind reminders
    NORMAL = "normal"


class Priority(IntEnum):
    """Claim order within a lane."""

    FIRST = 0  # a first emergency alert or the patient's emergency advice
    NEW = 1
    FOLLOW_UP = 2  # repeats and updates of alerts already delivered
