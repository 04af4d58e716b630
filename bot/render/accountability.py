"""Tablet accountability as the patient and the team read it (issue 14, part 3). The patient is
thanked for any count; only the team sees the comparison. Nothing here differs by study arm."""

from __future__ import annotations

from bot.channels.port import Action, Actions
from bot.render.actions import buttons
from bot.config import Settings
from bot.i18n import Translator

Rendered = tuple[str, Actions | None]
MORE = "m"
QUICK = tuple(str(n) for n in range(6))  # the 0-5 buttons


def payload(course_id: int, choice: str) -> str:
    return f"tc:{course_id}:{choice}"


def question(t: Translator, settings: Settings, course_id: int, cycle: int) -> Rendered:
    name = settings.medication.name(t.locale)
    text = "\n".join(["💊 " + t._("Cycle {cycle}: please count your {medication}.", cycle=cycle, medication=name),
                      t._("How many tablets are left? Tap the number, or type it.")])
    return text, question_markup(t, course_id)


def question_markup(t: Translator, course_id: int) -> Actions:
    return buttons([[Action(n, data=payload(course_id, n)) for n in QUICK[:3]],
                     [Action(n, data=payload(course_id, n)) for n in QUICK[3:]],
                     [Action(t._("More than 5"), data=payload(course_id, MORE))]])


def type_it(t: Translator) -> Rendered:
    return "💊 " + t._("Please type the number of tablets left, for example 8."), None


def recorded(t: Translator, left: int) -> Rendered:
    return "💊 " + t._("Thank you. Recorded: {count} tablets left.", count=left), None


def _difference(value: int | None) -> str:
    return "—" if value is None else f"{value:+d}" if value else "0"


def card_lines(t: Translator, balances) -> list[str]:
    """For /patient: each course's count next to what the record implies."""
    if not balances:
        return []
    lines = ["", t._("Tablets (dispensed / reported left / expected left / difference):")]
    for b in balances:
        reported = "—" if b.reported_left is None else str(b.reported_left)
        lines.append("• " + t._("Cycle {cycle}: {dispensed} / {reported} / {expected} / {difference}",
                                cycle=b.cycle, dispensed=b.dispensed, reported=reported, expected=b.expected_left,
                                difference=_difference(b.difference)))
        if b.ran_out:
            lines.append("  " + t._("Patient said they ran out: days {days}",
                                    days=", ".join(str(d.day) for d in b.ran_out)))
    return lines


def digest_lines(t: Translator, counts) -> list[str]:
    """For the digest: counts reported since the last digest, as (subject, cycle, reported, expected)."""
    if not counts:
        return []
    lines = ["", t._("Tablet counts since the last digest ({count}):", count=len(counts))]
    for subject, cycle, reported, expected in counts:
        lines.append("• " + t._("{subject}, cycle {cycle}: {reported} left, {expected} expected (difference {difference})",
                                subject=subject, cycle=cycle, reported=reported, expected=expected,
                                difference=_difference(reported - expected)))
    return lines


def alert_lines(t: Translator, details: dict) -> list[str]:
    if "reported_left" not in details:
        return []
    lines = [t._("Cycle {cycle}: {reported} tablets left, {expected} expected ({dispensed} dispensed); difference {difference}",
                 cycle=details.get("cycle"), reported=details["reported_left"], expected=details.get("expected_left"),
                 dispensed=details.get("dispensed"), difference=_difference(details.get("difference")))]
    if details.get("ran_out_days"):
        lines.append(t._("Patient said they ran out: days {days}",
                         days=", ".join(str(d) for d in details["ran_out_days"])))
    return lines
