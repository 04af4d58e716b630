"""Helpers for the coordinator end-to-end tests (the sandbox harness is tests/e2e/harness.py)."""

from __future__ import annotations

from datetime import date

from bot.channels.port import Account
from bot.db.models import AuditLog
from bot.i18n import Translator
from bot.services import courses, enrolment, invitations
from tests.e2e.harness import ADMIN_NJ, COORDINATOR_NJ, COORDINATOR_SH, is_chinese

SHANGHAI = "Asia/Shanghai"
# Both languages: the NJ coordinator reads Chinese, the NJ admin reads English.
NURSES = [(COORDINATOR_NJ, "zh_Hans"), (ADMIN_NJ, "en")]
NURSE_IDS = ["zh_Hans", "en"]
ESCALATION_NJ = 100000009

__all__ = ["ADMIN_NJ", "COORDINATOR_NJ", "COORDINATOR_SH", "ESCALATION_NJ", "NURSES", "NURSE_IDS"]


def tr(locale: str) -> Translator:
    return Translator(locale, SHANGHAI)


def nurse(h, telegram_id: int, locale: str):
    return h.sandbox.user(telegram_id, language_code="zh-hans" if locale == "zh_Hans" else "en")


NOTICE_FOOTERS = {Translator(locale, SHANGHAI)._("For your information; no reply needed.") for locale in ("en", "zh_Hans")}


def is_alert(message) -> bool:
    """Alerts and notices arrive on their own schedule; replies are everything else."""
    if (message.text or "").splitlines()[-1:] and (message.text or "").splitlines()[-1] in NOTICE_FOOTERS:
        return True
    return any((data or "").startswith("a:") for _, data in message.buttons)


def _replies(user, before: int):
    return [m for m in user.messages[before:] if not is_alert(m)]


async def send(h, user, command: str, payload: str | None = None, *, count: int = 1):
    """Send a command and wait for `count` replies in the user's chat (alerts aside); returns them."""
    before = len(user.messages)
    user.send_command(command, payload)
    await h.sandbox.wait_for(lambda: len(_replies(user, before)) >= count)
    return _replies(user, before)


async def type_text(h, user, text: str, *, count: int = 1):
    before = len(user.messages)
    user.send_text(text)
    await h.sandbox.wait_for(lambda: len(_replies(user, before)) >= count)
    return _replies(user, before)


async def tap(h, user, message, data: str) -> dict:
    """Press a button and wait until the bot answered the tap; returns the answer's parameters."""
    update = user.press(message, data)
    query_id = update["callback_query"]["id"]
    return await h.sandbox.wait_for(
        lambda: next((a for a in h.sandbox.callback_answers if a.get("callback_query_id") == query_id), None))


async def enrol_direct(h, user_id: int, subject: str, *, locale: str = "en", site: str = "NJ",
                       reminder_time: str = "08:00"):
    """Enrol through the service (the Telegram flow is covered by the patient tests and by
    test_coord_invite_enrol); returns the patient's sandbox user."""
    issued = await invitations.issue(h.rt, site_id=site, subject_id=subject)
    await enrolment.complete(h.rt, account=Account.telegram(user_id), address=str(user_id), token=issued.token, locale=locale,
                             reminder_time=reminder_time)
    return h.sandbox.user(user_id, language_code="zh-hans" if locale == "zh_Hans" else "en")


async def register(h, subject: str, chemo_end: date = date(2026, 12, 1)):
    return await courses.add_course(h.rt, subject_id=subject, chemo_end=chemo_end, actor_kind="operator",
                                  actor_id="test")


async def audits(h, action: str, **where):
    rows = await h.rows(AuditLog, AuditLog.action == action)
    return [r for r in rows if all(str(getattr(r, k)) == str(v) for k, v in where.items())]


def in_language(text: str, locale: str, msgid: str) -> bool:
    """The text is in this locale: it contains this message as that locale renders it, and, once
    the Chinese catalog has the message, Chinese characters."""
    rendered = tr(locale)._(msgid)
    if locale == "zh_Hans" and rendered != msgid:
        return is_chinese(text) and rendered.split("{")[0] in text
    return rendered.split("{")[0] in text
