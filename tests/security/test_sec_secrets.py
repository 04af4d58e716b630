"""The bot token never leaks; nothing anywhere can differ by study arm."""

from __future__ import annotations

import logging
import re
from datetime import date, timedelta, timezone

from babel.messages.pofile import read_po

from bot.i18n import LOCALES_DIR, SUPPORTED
from bot.services import courses
from tests.e2e.harness import running_bot
from tests.e2e.test_patient_days import DAY1
from tests.e2e.test_patient_journey import enrol

UTC = timezone.utc


async def test_token_appears_in_no_log_line_exception_or_message(engine, database_url, caplog):
    caplog.set_level(logging.DEBUG)
    async with running_bot(engine, database_url) as h:
        token = h.settings.token
        user, _ = await enrol(h, 7801, "en", "English", subject="NJ-7801")
        await courses.add_course(h.rt, subject_id="NJ-7801", chemo_end=date(2026, 12, 1), actor_kind="operator",
                               actor_id="test")
        await h.tick()  # the course plan goes out first (reminders wait for it)
        await h.sandbox.wait_for(lambda: len(user.messages) >= 4)
        h.sandbox.inject_fault(kind="server_error", chat_id=7801, times=1)
        await h.tick(DAY1)  # the reminder meets the server error, and is retried
        await h.tick(DAY1 + timedelta(seconds=5))
        reminder = await h.sandbox.wait_for(lambda: next((m for m in user.messages if m.buttons), None))
        user.press(reminder, reminder.buttons[0][1])
        await h.sandbox.wait_for(lambda: h.sandbox.callback_answers)
        user.press(reminder, "d:not-a-number:t")
        await h.sandbox.wait_for(lambda: len(h.sandbox.callback_answers) >= 2)
    assert any("getUpdates" in r.getMessage() for r in caplog.records), "expected httpx request logs to scan"
    for record in caplog.records:
        assert token not in record.getMessage(), record.name
        assert token not in (record.exc_text or "")
        if record.exc_info:
            assert token not in logging.Formatter().formatException(record.exc_info)
    for call in h.sandbox.calls:
        assert token not in str(call.params)


ARM_WORDS = re.compile(r"placebo|simulat|安慰剂|模拟|hetrombopag|海曲泊帕|active drug|randomi[sz]|随机|\barm\b|组别",
                       re.IGNORECASE)


def test_no_user_facing_text_can_reveal_the_arm():
    for locale in SUPPORTED:
        with (LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as handle:
            for message in read_po(handle):
                if message.id:
                    assert not ARM_WORDS.search(message.id) and not ARM_WORDS.search(message.string), message.id


def test_configuration_medication_name_is_neutral(example_config_path):
    from bot.config import load_settings

    settings = load_settings(example_config_path, env={})
    for text in (settings.medication.name_en, settings.medication.name_zh):
        assert not ARM_WORDS.search(text)
