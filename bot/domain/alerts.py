"""What the study team is alerted about, and how urgently (DESIGN.md §1, safety signals).

Each kind has a default level (a patient's message may be raised to same day or emergency by the
keyword safety net). Notices are for information only: nobody acknowledges them, they never
repeat or escalate, and they are not counted as open."""

from __future__ import annotations

from enum import StrEnum


class AlertLevel(StrEnum):
    EMERGENCY = "emergency"
    SAME_DAY = "same_day"
    INFO = "info"


class AlertKind(StrEnum):
    EMERGENCY_SYMPTOM = "emergency_symptom"
    SAME_DAY_SYMPTOM = "same_day_symptom"
    CONSECUTIVE_MISSED = "consecutive_missed"  # one per run of unanswered days
    UNREACHABLE = "unreachable"  # the patient blocked the bot (or the chat is gone)
    PATIENT_COURSE_START = "patient_course_start"  # the patient says chemotherapy ended: confirm the course
    PATIENT_COURSE_CONFLICT = "patient_course_conflict"  # their chemo end disagrees with the registered course
    PATIENT_PAUSED = "patient_paused"
    PATIENT_RESUMED = "patient_resumed"
    NEW_ENROLMENT = "new_enrolment"
    PATIENT_MESSAGE = "patient_message"  # free text, voice or photo, relayed
    MISSED_REASON = "missed_reason"  # not taken: doctor said stop, side effects, ran out of tablets
    CONMED_REPORTED = "conmed_reported"  # a medicine the protocol may exclude
    TABLET_COUNT_DIFFERENCE = "tablet_count_difference"  # tablets left differ from the dose record
    VISIT_CHANGE_REQUEST = "visit_change_request"  # the patient asks to move a visit


LEVEL_BY_KIND: dict[AlertKind, AlertLevel] = {
    AlertKind.EMERGENCY_SYMPTOM: AlertLevel.EMERGENCY,
    AlertKind.SAME_DAY_SYMPTOM: AlertLevel.SAME_DAY,
    AlertKind.CONSECUTIVE_MISSED: AlertLevel.SAME_DAY,
    AlertKind.UNREACHABLE: AlertLevel.SAME_DAY,
    AlertKind.PATIENT_COURSE_START: AlertLevel.INFO,
    AlertKind.PATIENT_COURSE_CONFLICT: AlertLevel.SAME_DAY,
    AlertKind.PATIENT_PAUSED: AlertLevel.INFO,
    AlertKind.PATIENT_RESUMED: AlertLevel.INFO,
    AlertKind.NEW_ENROLMENT: AlertLevel.INFO,
    AlertKind.PATIENT_MESSAGE: AlertLevel.INFO,
    AlertKind.MISSED_REASON: AlertLevel.SAME_DAY,
    AlertKind.CONMED_REPORTED: AlertLevel.SAME_DAY,
    AlertKind.TABLET_COUNT_DIFFERENCE: AlertLevel.INFO,
    AlertKind.VISIT_CHANGE_REQUEST: AlertLevel.INFO,
}

NOTICE_KINDS = frozenset({AlertKind.NEW_ENROLMENT, AlertKind.PATIENT_PAUSED, AlertKind.PATIENT_RESUMED})


def is_notice(kind: str) -> bool:
    return kind in NOTICE_KINDS


__all__ = ["LEVEL_BY_KIND", "NOTICE_KINDS", "AlertKind", "AlertLevel", "is_notice"]
