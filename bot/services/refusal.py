"""One refusal for every use case: `Refused(code)`.

A use case that says no raises a subclass named after its topic (`CourseRefused`,
`VisitRefused`, ...) so that a caller can tell whose refusal it is; every one carries a stable
`code` that handlers map to a localized answer, and an optional `detail` for operators and logs
(never shown to a patient)."""

from __future__ import annotations


class Refused(Exception):
    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code = code
