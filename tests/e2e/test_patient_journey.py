"""The patient journey end to end, through the sandbox, in both languages."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from bot.db.models import AuditLog, DoseDay, DoseEvent, Patient
from bot.services import courses, invitations
from tests.e2e.harness import COORDINATOR_NJ, assert_language, running_bot

UTC = timezone.utc
CASES = [("zh-hans", "zh_Hans", "中文", 7001), ("en", "en", "English", 7002)]


async def enrol(h, user_id: int, language_code: str, language_button: str, *, subject: str, time_button="08:00"):
    issued = await invitations.issue(h.rt, site_id="NJ", subject_id=subject)
    user = h.sandbox.user(user_id, language_code=language_code)
    user.send_command("/start", issued.token)
    await h.sandbox.wait_for(lambda: user.messages and user.last_message.buttons)
    assert any(language_button in b for b in user.last_message.button_texts)
    user.press(user.last_message, f"e:lang:{'zh_Hans' if language_button == '中文' else 'en'}")
    await h.sandbox.wait_for(lambda: len(user.last_message.history) >= 1)
    consent = user.last_message
    user.press(consent, "e:consent:yes")
    await h.sandbox.wait_for(lambda: len(consent.history) >= 2)
    user.press_button(time_button, consent)
    await h.sandbox.wait_for(lambda: len(user.messages) >= 2)
    summary = user.last_message
    user.press(summary, "e:confirm:yes")
    await h.sandbox.wait_for(lambda: len(user.messages) >= 3)
    return user, issued


@pytest.mark.parametrize("language_code, locale, button, user_id", CASES)
async def test_enrol_course_reminder_taken_twice(engine, database_url, language_code, locale, button, user_id):
    async with running_bot(engine, database_url) as h:
        user, _ = await enrol(h, user_id, language_code, button, subject=f"NJ-{user_id}")
        [patient] = await h.rows(Patient)
        assert patient.account == str(user_id) and patient.locale == locale and patient.reminder_time == "08:00"
        # coordinators are told (subject id only)
        await h.tick()
        alert_texts = [m.text for m in h.sandbox.messages(COORDINATOR_NJ)]
        assert any(f"NJ-{user_id}" in t for t in alert_texts)

        course = await courses.add_course(h.rt, subject_id=f"NJ-{user_id}", chemo_end=date(2026, 12, 1),
                                        actor_kind="operator", actor_id="test")
        await h.tick()
        plan = user.last_message
        assert "2" in plan.text and plan.protect_content
        # day 1 = 2026-12-02 08:00 Asia/Shanghai = 00:00 UTC; nothing before
        await h.tick(datetime(2026, 12, 1, 23, 59, tzinfo=UTC))
        count = len(user.messages)
        await h.tick(datetime(2026, 12, 2, 0, 0, tzinfo=UTC))
        await h.sandbox.wait_for(lambda: len(user.messages) == count + 1)
        reminder = user.last_message
        assert reminder.protect_content and len(reminder.buttons) == 4
        taken = reminder.buttons[0][1]
        user.press(reminder, taken)
        await h.sandbox.wait_for(lambda: reminder.reply_markup is None)
        user.press(reminder, taken)
        await h.sandbox.wait_for(lambda: len(h.sandbox.callback_answers) >= 2)
        days = await h.rows(DoseDay, DoseDay.course_id == course.id, DoseDay.state == "taken")
        assert len(days) == 1 and days[0].day == 1
        events = await h.rows(DoseEvent, DoseEvent.dose_day_id == days[0].id, DoseEvent.kind == "answer")
        assert len(events) == 1
        assert_language(user.messages, locale)


async def test_forged_and_malformed_callbacks_change_nothing(engine, database_url):
    async with running_bot(engine, database_url) as h:
        victim, _ = await enrol(h, 7101, "en", "English", subject="NJ-7101")
        intruder, _ = await enrol(h, 7102, "zh-hans", "中文", subject="NJ-7102")
        await courses.add_course(h.rt, subject_id="NJ-7101", chemo_end=date(2026, 12, 1), actor_kind="operator",
                               actor_id="test")
        await h.tick(datetime(2026, 12, 2, 0, 0, tzinfo=UTC))
        reminder = await h.sandbox.wait_for(
            lambda: next((m for m in victim.messages if m.buttons and m.buttons[0][1].startswith("d:")), None))
        answers = len(h.sandbox.callback_answers)
        for data in (reminder.buttons[0][1], "d:999999:t", "d:abc:t", "zz" * 40, "x"):
            intruder.press(reminder, data)
        await h.sandbox.wait_for(lambda: len(h.sandbox.callback_answers) >= answers + 5)

        async def rejected():
            rows = await h.rows(AuditLog, AuditLog.action == "callback.rejected", AuditLog.actor_id == "telegram:7102")
            return len(rows) == 5

        await h.sandbox.wait_for(rejected)
        assert all(d.state == "scheduled" for d in await h.rows(DoseDay))
        assert reminder.reply_markup is not None  # the victim's message was not touched
