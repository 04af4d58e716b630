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


class Lane(StrEnum):
    ALERT = "alert"  # safety alerts and the patient's emergency advice: never behind reminders
    NORMAL = "normal"


class Priority(IntEnum):
    """Claim order within a lane."""

    FIRST = 0  # a first emergency alert or the patient's emergency advice
    NEW = 1
    FOLLOW_UP = 2  # repeats and updates of alerts already delivered
