"""The safety net on what patients type: configured keywords and a fever rule raise the level of
a free-text message. A match never lowers anything, and a message without a match is still
relayed to the study team: keywords only decide how urgently, never whether, a person reads it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.domain.triage import TriageLevel

# A temperature as patients write it: "39", "38.5", "38,5", "39度", "39°C", "39℃", "102F".
_NUMBER = re.compile(r"(?<![\d.])(\d{2,3}(?:[.,]\d)?)\s*(°\s*[cf]|℃|℉|度|c\b|f\b)?", re.IGNORECASE)


@dataclass(frozen=True)
class KeywordRule:
    """One configured list: any of `words` (any language, matched case-insensitively as a
    substring) puts a message at `level`."""

    code: str
    level: TriageLevel
    words: tuple[str, ...]


@dataclass(frozen=True)
class FeverRule:
    """A fever word together with a temperature at or above `threshold` °C."""

    words: tuple[str, ...]
    threshold_c: float
    level: TriageLevel


@dataclass(frozen=True)
class TextTriage:
    level: TriageLevel | None  # None: nothing matched (the message is still relayed)
    codes: tuple[str, ...]  # the rules that matched, most severe first


def normalize(text: str) -> str:
    """Full-width digits and letters to ASCII, lower case, single spaces."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    return re.sub(r"\s+", " ", text).strip()


def temperatures_c(text: str) -> list[float]:
    """Body temperatures mentioned in `text`, in °C (Fahrenheit converted); other numbers ignored."""
    found = []
    for number, unit in _NUMBER.findall(normalize(text)):
        value = float(number.replace(",", "."))
        unit = (unit or "").replace(" ", "")
        if unit in ("°f", "℉", "f"):
            value = (value - 32) * 5 / 9
        if 34.0 <= value <= 43.5:
            found.append(round(value, 1))
    return found


def triage_text(text: str, rules: Sequence[KeywordRule], fever: FeverRule | None = None) -> TextTriage:
    clean = normalize(text)
    matched: list[tuple[TriageLevel, str]] = []
    for rule in rules:
        if any(normalize(word) in clean for word in rule.words if word.strip()):
            matched.append((rule.level, rule.code))
    if fever is not None and any(normalize(w) in clean for w in fever.words if w.strip()):
        if any(t >= fever.threshold_c for t in temperatures_c(clean)):
            matched.append((fever.level, "fever"))
    if not matched:
        return TextTriage(None, ())
    matched.sort(key=lambda item: -item[0])
    return TextTriage(matched[0][0], tuple(dict.fromkeys(code for _, code in matched)))


def raise_level(*levels: TriageLevel | None) -> TriageLevel | None:
    """The most severe of the given levels (None when there is none): keywords never lower one."""
    present: Iterable[TriageLevel] = [level for level in levels if level is not None]
    return max(present, default=None)


__all__ = ["FeverRule", "KeywordRule", "TextTriage", "normalize", "raise_level", "temperatures_c", "triage_text"]
