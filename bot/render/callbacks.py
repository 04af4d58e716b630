"""Callback payloads: short, opaque ids only, identical for every study arm. Every payload is
re-authorized on use (the dose day must belong to the tapping patient)."""

from __future__ import annotations

import re
from dataclasses import dataclass


MAX_LEN = 64  # Telegram's limit for callback_data

TAKEN, LATER, MISSED = "t", "l", "m"  # under a day's own reminder
LATE_TAKEN, LATE_MISSED = "lt", "lm"  # under the next-morning question about a day that closed unanswered
CATCH_UP_TAKEN = "ct"  # under the catch-up question about days over before the course was registered
UNDO = "u"  # under "Not today": take it back while the day is open
DOSE_ACTIONS = (TAKEN, LATER, MISSED, LATE_TAKEN, LATE_MISSED, CATCH_UP_TAKEN, UNDO)


@dataclass(frozen=True)
class Parsed:
    kind: str
    args: tuple[str, ...]


_PATTERN = re.compile(r"^([a-z]{1,3}):([A-Za-z0-9_:.\-]{0,56})$")


# Routing: each feature registers a CallbackQueryHandler per payload it owns, with a pattern that
# matches the whole payload exactly (PTB hands the match to the callback as `context.match`).
ID = r"([1-9][0-9]{0,11})"  # a row id
ARG = r"([A-Za-z0-9_.\-]*)"  # a code, a subject id, a date: checked again by the feature


def one_of(values) -> str:
    return "(" + "|".join(re.escape(v) for v in values) + ")"


def pattern(kind: str, *parts: str) -> re.Pattern:
    """`kind:part:part…`, nothing before or after, at most Telegram's 64 characters. `kind` may
    be a group of kinds, e.g. "(pc|pk)"."""
    return re.compile(rf"^(?=.{{1,{MAX_LEN}}}$){kind}:{':'.join(parts)}$")


def parse(data: str | None) -> Parsed | None:
    """None for anything malformed or oversized: the caller answers and changes nothing."""
    if not data or len(data) > MAX_LEN:
        return None
    match = _PATTERN.match(data)
    if not match:
        return None
    return Parsed(match.group(1), tuple(match.group(2).split(":")) if match.group(2) else ())


def dose(dose_day_id: int, action: str) -> str:
    return f"d:{dose_day_id}:{action}"


def missed_reason(dose_day_id: int, reason: str) -> str:
    return f"r:{dose_day_id}:{reason}"


def symptom(code: str) -> str:
    return f"s:{code}"


def symptom_send(site_id: str | None) -> str:
    """Send carries the patient's site id, so the emergency path can show the right phone
    number without the database."""
    return f"s:_send:{site_id}" if site_id else "s:_send"


def conmed(course_id: int, point: str, answer: str, category: str | None = None) -> str:
    """The prohibited-medicine check: cm:<course id>:<s|m>:<n|y|b>[:<category code>]."""
    return f"cm:{course_id}:{point}:{answer}" + (f":{category}" if category else "")


def enrol(step: str, value: str) -> str:
    return f"e:{step}:{value}"


def ack(alert_id: int) -> str:
    return f"a:{alert_id}"


def reply(alert_id: int) -> str:
    return f"rp:{alert_id}"


def menu(item: str) -> str:
    return f"m:{item}"


# Coordinator buttons. Each carries only ids (or a subject id and a date) and is re-authorized
# on every tap: the caller must be a configured coordinator of that patient's site.
COURSE_REGISTER, COURSE_DROP = "y", "n"
PAUSE, RESUME, WITHDRAW, REBIND = "p", "r", "w", "b"


def course_confirm(alert_id: int) -> str:
    """Confirm the course a patient reported (from its alert)."""
    return f"pc:{alert_id}"


def course_correct(alert_id: int) -> str:
    """Correct the date of the course a patient reported (from its alert)."""
    return f"pk:{alert_id}"


def course_register(subject_id: str, chemo_end_iso: str, action: str) -> str:
    """Register (or drop) the previewed next cycle: cy:y:SH-017:20261201."""
    return f"cy:{action}:{subject_id}:{chemo_end_iso.replace('-', '')}"


def revoke_invitation(invitation_id: int) -> str:
    return f"iv:{invitation_id}"


def patient_action(action: str, subject_id: str) -> str:
    return f"pt:{action}:{subject_id}"
