"""Symptom triage: the most severe selected symptom decides the response.

Which symptom has which level is configuration signed off by the study physician.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import IntEnum


class TriageLevel(IntEnum):
    LOG = 1
    SAME_DAY = 2
    EMERGENCY = 3

    @property
    def key(self) -> str:
        """The config spelling: "log", "same_day", "emergency"."""
        return self.name.lower()

    @classmethod
    def from_key(cls, key: str) -> TriageLevel:
        try:
            return cls[key.upper()]
        except (KeyError, AttributeError):
            raise ValueError(f"unknown triage level {key!r}; expected one of log, same_day, emergency") from None


class UnknownSymptom(ValueError):
    """A selected symptom code that the configured list does not know."""

    def __init__(self, codes: str | Iterable[str]) -> None:
        if isinstance(codes, str):
            codes = [codes]
        self.codes = tuple(sorted(set(codes)))
        super().__init__(f"unknown symptom code(s): {', '.join(self.codes)}")


def triage(selected: Iterable[str], levels: Mapping[str, TriageLevel | str]) -> TriageLevel:
    """The most severe level among the selected symptom codes.

    `levels` values may be TriageLevel or their config keys. An unknown code is refused rather
    than guessed at: a safety report must not be downgraded by a typo.
    """
    codes = list(selected)
    if not codes:
        raise ValueError("no symptom selected")
    unknown = [code for code in codes if code not in levels]
    if unknown:
        raise UnknownSymptom(unknown)
    return max(_level(levels[code]) for code in codes)


def _level(value: TriageLevel | str) -> TriageLevel:
    if isinstance(value, TriageLevel):
        return value
    if isinstance(value, str):
        return TriageLevel.from_key(value)
    return TriageLevel(value)


__all__ = ["TriageLevel", "UnknownSymptom", "triage"]
