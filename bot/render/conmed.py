"""The prohibited-medicine check as the patient and the team read it (issue 14, part 1).

Tap-only, neutral, no medical advice beyond "do not stop or start medicines without asking your
study doctor; your team will contact you". Nothing here differs by study arm."""

from __future__ import annotations

from bot.channels.port import Action, Actions
from bot.render.actions import buttons
from bot.config import Settings, Site
from bot.i18n import Translator
from bot.render import callbacks as cb

Rendered = tuple[str, Actions | None]
POINT_CODES = {"start": "s", "mid": "m"}  # in callback payloads
POINTS_BY_CODE = {v: k for k, v in POINT_CODES.items()}
ANSWER_NO, ANSWER_YES = "n", "y"


def payload(course_id: int, point: str, answer: str, category: str | None = None) -> str:
    """cm:<course id>:<s|m>:<n|y>[:<category code>] (ids and configured codes only)."""
    return cb.conmed(course_id, POINT_CODES[point], answer, category)


def question_text(t: Translator, settings: Settings) -> str:
    custom = settings.conmed.question_zh if t.locale.startswith("zh") else settings.conmed.question_en
    return custom or t._("Since your last course, have you started any new medicine? This includes traditional "
                         "Chinese medicine, aspirin or other blood thinners, or anything to raise platelets.")


def question(t: Translator, settings: Settings, course_id: int, point: str) -> Rendered:
    text = "💊 " + question_text(t, settings)
    return text, buttons([
        [Action(t._("No, nothing new"), data=payload(course_id, point, ANSWER_NO))],
        [Action(t._("Yes, I started something"), data=payload(course_id, point, ANSWER_YES))],
    ])


def pick_list(t: Translator, settings: Settings, course_id: int, point: str) -> Rendered:
    rows = [[Action(c.label(t.locale), data=payload(course_id, point, ANSWER_YES, c.code))]
            for c in settings.conmed.categories]
    rows.append([Action(t._("← Back"), data=payload(course_id, point, "b"))])
    return "💊 " + t._("What did you start? Tap the closest one."), buttons(rows)


def recorded_no(t: Translator) -> Rendered:
    return "💊 " + t._("Thank you. Recorded: no new medicine."), None


def recorded_yes(t: Translator, settings: Settings, site: Site, category: str | None) -> Rendered:
    chosen = settings.conmed.by_code().get(category or "")
    lines = ["💊 " + t._("Thank you. Recorded: {what}.", what=chosen.label(t.locale) if chosen else "—"),
             t._("Your study team will contact you."),
             t._("Do not stop or start any medicine without asking your study doctor."),
             t._("If you know the name of the medicine, you can type it here."),
             t._("Study site phone: {phone}", phone=site.phone)]
    return "\n".join(lines), None


def category_label(t: Translator, settings: Settings, code: str | None) -> str:
    chosen = settings.conmed.by_code().get(code or "")
    return chosen.label(t.locale) if chosen else (code or "—")


def point_label(t: Translator, point: str | None) -> str:
    return {"start": t._("start of course"), "mid": t._("mid-course")}.get(point or "", point or "—")


def alert_lines(t: Translator, settings: Settings, details: dict) -> list[str]:
    """The alert's body: what the patient picked, and when they were asked."""
    if not details.get("conmed_category"):
        return []
    return [t._("Patient reports a new medicine: {what}", what=category_label(t, settings, details["conmed_category"])),
            t._("Asked at: {point}, cycle {cycle}", point=point_label(t, details.get("check_point")),
                cycle=details.get("cycle"))]
