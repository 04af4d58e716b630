"""The states of a patient's enrolment, of a course and of a family helper, as stored.

A patient is `active` (reminded), `paused` (by themselves or, see `PauseOrigin`, held by the study
team) or `withdrawn` (no message ever again; every record kept). A course is `active` or
`cancelled` (voided with a reason; its answered days are kept). A helper is `active` while the
patient consents, else `removed`."""

from __future__ import annotations

from enum import StrEnum


class PatientStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    WITHDRAWN = "withdrawn"


class CourseStatus(StrEnum):
    ACTIVE = "active"
    CANCELLED = "cancelled"


class HelperStatus(StrEnum):
    ACTIVE = "active"
    REMOVED = "removed"


__all__ = ["CourseStatus", "HelperStatus", "PatientStatus"]
