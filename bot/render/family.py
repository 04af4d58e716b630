"""Screens of the family helper feature (issue 14, part 4): the patient's /helpers, the helper's
joining dialog, menu and notices, the coordinator's /helper answers.

Neutral words only: the person helped is "the person you help" (no names, no relationship
words), nothing about doses beyond what the patient sees, never anything that differs by arm.
"""

from __future__ import annotations

from bot.channels.port import Action, Actions, Menu
from bot.render.actions import buttons, menu
from bot.config import Settings, Site
from bot.db.models import Course, Helper
from bot.i18n import Translator
from bot.render.patient import medication


PREFIX = "hf"
CONSENT, WITHDRAW, INVITE, REMOVE, LANG, JOIN, NOT_NOW, KEEP = "ok", "wd", "in", "rm", "lg", "jn", "no", "kp"


def data(action: str, value: str = "") -> str:
    return f"{PREFIX}:{action}" + (f":{value}" if value else "")


def unavailable(t: Translator) -> str:
    return t._("Family helpers are not used in this study.")


def what_a_helper_gets(t: Translator) -> str:
    return "\n".join([
        "• " + t._("A short notice when a course of study tablets starts, and when a day ends without an answer."),
        "• " + t._("They can see the same course overview as you (/status)."),
        "• " + t._("They can report a symptom for you; the study team sees that a helper sent it."),
        "• " + t._("They do not see your messages, your other answers or anything about other patients."),
    ])


def patient_screen(t: Translator, settings: Settings, *, consented: bool, helpers: list[Helper]) -> tuple[str, Actions]:
    lines = [t._("Family helper"), t._("A family member (for example a son or daughter) can help you with the "
                                        "study reminders, if you agree."), what_a_helper_gets(t)]
    rows: list[list[Action]] = []
    if not consented:
        lines.append(t._("You can withdraw your agreement at any time here."))
        rows.append([Action(t._("I agree to a family helper"), data=data(CONSENT))])
        return "\n".join(lines), buttons(rows)
    lines.append(t._("You have agreed. Helpers now: {count} of {limit}.", count=len(helpers),
                     limit=settings.helpers.max_per_patient))
    lines += ["• " + t._("Helper {helper} (since {date})", helper=h.helper_id, date=t.date(h.joined_at))
              for h in helpers]
    if len(helpers) < settings.helpers.max_per_patient:
        rows.append([Action(t._("Invite a helper"), data=data(INVITE))])
    rows += [[Action(t._("Remove {helper}", helper=h.helper_id), data=data(REMOVE, str(h.id)))]
             for h in helpers]
    rows.append([Action(t._("Withdraw my agreement"), data=data(WITHDRAW))])
    return "\n".join(lines), buttons(rows)


def invitation_for_patient(t: Translator, link: str, expires) -> str:
    return "\n".join([
        t._("Send this link to your helper. It works once, until {date}:", date=t.date(expires)), link,
        t._("When they open it, they join as your helper. You can remove them at any time with /helpers."),
    ])


def withdrawn(t: Translator) -> str:
    return t._("Your agreement is withdrawn. No helper gets any message about you any more.")


def removed(t: Translator, helper_id: str) -> str:
    return t._("{helper} is no longer your helper and gets no more messages about you.", helper=helper_id)


def joined_notice(t: Translator, helper_id: str) -> str:
    return "\n".join([t._("A family helper has joined: {helper}.", helper=helper_id),
                      t._("If you did not expect this, remove them with /helpers and tell your study team.")])


# --- the helper's side --------------------------------------------------------------------

def language_question(t: Translator) -> tuple[str, Actions]:
    return (t._("You were invited to help a patient with their study reminders. Please choose your language."),
            buttons([[Action("中文", data=data(LANG, "zh_Hans")),
                       Action("English", data=data(LANG, "en"))]]))


def explanation(t: Translator) -> tuple[str, Actions]:
    text = "\n".join([
        t._("As a family helper you will get:"),
        "• " + t._("a short notice when a course of study tablets starts, and when a day ends without an answer;"),
        "• " + t._("the course overview with /status;"),
        "• " + t._("a button to report a symptom for the person you help."),
        t._("You will not see their messages or anything about other patients. The person you help can remove "
            "you at any time."),
        t._("We keep a helper number for you, your language and the times of your messages; never your name or "
            "phone number."),
    ])
    return text, buttons([[Action(t._("Join as helper"), data=data(JOIN)),
                            Action(t._("Not now"), data=data(NOT_NOW))]])


def helper_menu(t: Translator) -> Menu:
    return menu([[t._("⚠ Report a symptom for them")], [t._("📋 Their status")]])


def welcome(t: Translator, site: Site) -> str:
    return "\n".join([
        t._("You are now a family helper. Thank you."),
        t._("Use the buttons below to report a symptom for the person you help, or to see their course."),
        t._("In an emergency call 120 first."),
        t._("Study site phone: {phone}", phone=site.phone),
    ])


def help_text(t: Translator, site: Site) -> str:
    return "\n".join([
        t._("You are a family helper."),
        "/status — " + t._("their course at a glance"),
        "/report — " + t._("report a symptom for them"),
        t._("Study site phone: {phone}", phone=site.phone),
    ])


def not_read(t: Translator, site: Site) -> str:
    return "\n".join([
        t._("Messages from helpers are not read here."),
        t._("To report a symptom, use the button below. For anything else, please phone the study team: {phone}",
            phone=site.phone),
        t._("In an emergency call 120 first."),
    ])


def status_header(t: Translator) -> str:
    return t._("Course of the person you help:")


def paused_line(t: Translator) -> str:
    return t._("Reminders are paused at the moment.")


def cut_off(t: Translator) -> str:
    return "\n".join([
        t._("You are no longer a family helper in this study, so this bot sends you nothing more."),
        t._("If someone feels unwell, call 120 or their study team."),
    ])


def switched_off(t: Translator) -> str:
    return "\n".join([t._("Family helpers are switched off for this study at the moment."),
                      t._("If someone feels unwell, call 120 or their study team.")])


def refusal(t: Translator, code: str) -> str:
    return {
        "off": unavailable(t),
        "no_consent": t._("The person you help has not agreed to a helper yet. Ask them to send /helpers to the "
                          "bot and agree, then open your link again."),
        "full": t._("This patient already has the most helpers allowed. Nothing was changed."),
        "withdrawn": t._("This invitation can no longer be used. Please ask the study team."),
        "is_patient": t._("You are enrolled as a patient, so you cannot be a helper with this account."),
        "is_helper": t._("You are already a helper. Each account can help one person."),
        "expired": t._("This step has expired. Please open your invitation link again."),
        "not_found": t._("No such helper. Nothing was changed."),
        "reason": t._("Please give a reason."),
        "throttled": t._("Too many attempts. Please wait an hour, or ask your study nurse for help."),
    }.get(code, t._("This invitation code cannot be used. Please check it with your study nurse."))


def course_start(t: Translator, settings: Settings, course: Course) -> str:
    custom = settings.helpers.course_start_zh if t.is_zh else settings.helpers.course_start_en
    first = custom or t._("A new course of {medication} starts for the person you help.",
                          medication=medication(t, settings))
    return "\n".join([first, t._("{first} – {last}, one reminder a day.", first=t.date(course.first_day),
                                 last=t.date(course.last_day))])


def not_reported(t: Translator, settings: Settings, day) -> str:
    custom = settings.helpers.not_reported_zh if t.is_zh else settings.helpers.not_reported_en
    if custom:
        return "\n".join([custom, t.date(day)])
    return t._("The person you help has not confirmed their {medication} for {date}.",
               medication=medication(t, settings), date=t.date(day))


# --- coordinators ------------------------------------------------------------------------

def card_lines(t: Translator, patient, helpers: list[Helper]) -> list[str]:
    """The /patient card: the patient's consent and the helpers bound now."""
    if patient.helper_consent_at is None:
        return [t._("Family helpers: the patient has not agreed")]
    return [t._("Family helpers (agreed {date}): {helpers}", date=t.date(patient.helper_consent_at),
                helpers=", ".join(h.helper_id for h in helpers) or "—")]


def coordinator_usage(t: Translator, example: str) -> str:
    return "\n".join([t._("Usage:"), f"/helper {example}", f"/helper remove H-{example.split('-')[0]}-001 "
                      + t._("REASON")])


def coordinator_invited(t: Translator, subject_id: str, consented: bool, link: str, expires) -> str:
    lines = [t._("Helper invitation for {subject} (single use, until {date}):", subject=subject_id,
                 date=t.date(expires)), link]
    if not consented:
        lines.append(t._("The patient has not agreed to a helper yet: the helper can join only after the patient "
                         "agrees with /helpers."))
    return "\n".join(lines)


def coordinator_removed(t: Translator, helper_id: str, subject_id: str) -> str:
    return t._("{helper} is no longer a helper of {subject}.", helper=helper_id, subject=subject_id)
