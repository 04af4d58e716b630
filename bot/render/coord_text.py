"""What the coordinator screens share: message chunks, adherence figures, report levels.
Plain text (no markup to break), short lines for a phone."""

from __future__ import annotations

from bot.domain.adherence import Adherence
from bot.i18n import Translator


MESSAGE_LIMIT = 3800  # below Telegram's 4096, leaving room for a header


def chunks(lines: list[str], limit: int = MESSAGE_LIMIT) -> list[str]:
    """Join lines into as few messages as fit."""
    out, current = [], ""
    for line in lines:
        if current and len(current) + 1 + len(line) > limit:
            out.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    return out + ([current] if current else [])


def rate(counts: Adherence) -> str:
    return counts.percent_text()


def ratio(t: Translator, counts: Adherence) -> str:
    text = t._("{rate} ({taken} of {expected} doses)", rate=rate(counts), taken=counts.taken,
               expected=counts.expected)
    if counts.held or counts.before_registration:  # not the patient's to answer: shown apart, never counted
        text += "; " + t._("held {held}, before registration {before}", held=counts.held,
                           before=counts.before_registration)
    return text


def level_label(t: Translator, level: str) -> str:
    return {"emergency": "🚨 " + t._("emergency"), "same_day": "⚠ " + t._("same day"),
            "log": t._("logged")}.get(level, level)
