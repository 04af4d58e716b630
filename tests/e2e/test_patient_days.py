"""Reminder days, late answers, symptoms and failures, through the sandbox, in both languages."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import OperationalError

from bot.db.models import Alert, AuditLog, DoseDay, Patient, SymptomReport
from bot.i18n import Translator
from bot.render.coordinator import alert_title
from bot.services import courses, invitations
from tests.e2e.harness import COORDINATOR_NJ, assert_language, running_bot, wait_as_time_passes
from tests.e2e.test_patient_journey import CASES, enrol

UTC = timezone.utc
DAY1 = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)  # 08:00 Asia/Shanghai


async def enrolled_with_course(h, language_code, button, user_id):
    user, _ = await enrol(h, user_id, language_code, button, subject=f"NJ-{user_id}")
    await courses.add_course(h.rt, subject_id=f"NJ-{user_id}", chemo_end=date(2026, 12, 1), actor_kind="operator",
                           actor_id="test")
    await h.tick()
    return user


async def reminder_at(h, user, when):
    count = len(user.messages)
    await h.tick(when)
    await h.sandbox.wait_for(lambda: len(user.messages) > count)
    return user.last_message


@pytest.mark.parametrize("language_code, locale, button, user_id", CASES)
async def test_bad_tokens_get_one_answer_and_are_throttled(engine, database_url, language_code, locale, button, user_id):
    async with running_bot(engine, database_url) as h:
        used_user, issued = await enrol(h, user_id + 100, language_code, button, subject="NJ-900")
        expired = await invitations.issue(h.rt, site_id="NJ", expires_days=1)
        h.clock.advance(days=2)
        user = h.sandbox.user(user_id, language_code=language_code)
        attempts = [issued.token, expired.token, "garbage!", "A" * 30]
        for token in attempts:
            user.send_command("/start", token)
        await h.sandbox.wait_for(lambda: len(user.messages) == 4)
        texts = {m.text for m in user.messages}
        assert len(texts) == 1, texts  # never reveals which failure it was
        for count in range(5, 8):
            user.send_text("B" * 30)
            await h.sandbox.wait_for(lambda: len(user.messages) == count)
        assert user.last_message.text not in texts  # throttled after 5 failures in an hour
        assert_language(user.messages, locale)
        rejected = await h.rows(AuditLog, AuditLog.action == "enrol.token_rejected", AuditLog.actor_id == f"telegram:{user_id}")
        assert {r.reason for r in rejected} >= {"used", "expired", "format", "unknown"}
        assert await h.rows(AuditLog, AuditLog.action == "enrol.throttled")
        assert len(await h.rows(Patient)) == 1


@pytest.mark.parametrize("language_code, locale, button, user_id", CASES)
async def test_snooze_silence_close_and_late_answer(engine, database_url, language_code, locale, button, user_id):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, language_code, button, user_id)
        reminder = await reminder_at(h, user, DAY1)
        answers = len(h.sandbox.callback_answers)
        user.press(reminder, reminder.buttons[1][1])  # remind me later
        await h.sandbox.wait_for(lambda: len(h.sandbox.callback_answers) > answers)
        snoozed = await reminder_at(h, user, DAY1 + timedelta(minutes=30))
        assert len(snoozed.buttons) == 4
        # silence: the 2-hour follow-up is skipped for a snoozed-and-answered day only; here no answer at all
        followup = await reminder_at(h, user, DAY1 + timedelta(hours=2))
        assert followup.protect_content
        await h.tick(datetime(2026, 12, 2, 16, 0, tzinfo=UTC))  # 24:00 local: the day closes
        [day1] = await h.rows(DoseDay, DoseDay.day == 1)
        assert day1.state == "not_reported"
        question = await reminder_at(h, user, datetime(2026, 12, 3, 0, 0, tzinfo=UTC))
        late = [m for m in user.messages if len(m.buttons) == 2 and m.buttons[0][1] == f"d:{day1.id}:lt"]
        assert late, [m.text for m in user.messages[-3:]]
        h.clock.advance(minutes=20)
        user.press(late[0], late[0].buttons[0][1])
        await h.sandbox.wait_for(lambda: late[0].reply_markup is None)
        [day1] = await h.rows(DoseDay, DoseDay.day == 1)
        assert day1.state == "taken" and day1.late and day1.answered_at == DAY1 + timedelta(hours=24, minutes=20)
        [day2] = await h.rows(DoseDay, DoseDay.day == 2)
        assert day2.state == "scheduled"  # never a double dose today
        assert question is not None
        assert_language(user.messages, locale)


@pytest.mark.parametrize("language_code, locale, button, user_id", CASES)
async def test_emergency_symptom_advice_first_alert_and_audit(engine, database_url, language_code, locale, button,
                                                             user_id):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, language_code, button, user_id)
        user.send_command("/report")
        await h.sandbox.wait_for(lambda: user.last_message.buttons and user.last_message.buttons[-1][1] == "s:_cancel")
        picker = user.last_message
        count = len(user.messages)
        user.press(picker, "s:black_stool")
        await h.sandbox.wait_for(lambda: picker.history)
        user.press(picker, "s:_send")
        await h.sandbox.wait_for(lambda: len(user.messages) > count and len(picker.history) >= 2)
        advice = user.messages[count]
        assert "120" in advice.text and "+86-25-0000-0000" in advice.text
        [report] = await h.rows(SymptomReport)
        assert report.level == "emergency" and report.symptoms == ["black_stool"]
        [alert] = await h.rows(Alert, Alert.kind == "emergency_symptom")
        assert alert.next_repeat_at is not None
        # The emergency alert itself (not any coordinator message: the enrolment notice names the subject too).
        title = alert_title(Translator("zh_Hans"), "emergency_symptom")
        await h.sandbox.wait_for(lambda: any(f"NJ-{user_id}" in (m.text or "") and title in (m.text or "")
                                             and m.buttons for m in h.sandbox.messages(COORDINATOR_NJ)))
        assert await h.rows(AuditLog, AuditLog.action == "symptom.reported")
        assert await h.rows(AuditLog, AuditLog.action == "alert.raised")
        assert_language(user.messages, locale)


@pytest.mark.parametrize("language_code, locale, button, user_id", CASES)
async def test_report_during_database_failure_is_never_acknowledged(engine, database_url, language_code, locale,
                                                                   button, user_id, monkeypatch):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, language_code, button, user_id)
        user.send_command("/report")
        await h.sandbox.wait_for(lambda: user.last_message.buttons and user.last_message.buttons[-1][1] == "s:_cancel")
        picker = user.last_message
        user.press(picker, "s:urine_blood")
        await h.sandbox.wait_for(lambda: picker.history)

        from sqlmodel.ext.asyncio.session import AsyncSession

        real_flush = AsyncSession.flush

        async def failing_flush(self, *args, **kwargs):
            if any(isinstance(o, SymptomReport) for o in self.new):
                raise OperationalError("INSERT", {}, Exception("database is down"))
            return await real_flush(self, *args, **kwargs)

        monkeypatch.setattr(AsyncSession, "flush", failing_flush)
        user.press(picker, "s:_send")
        await h.sandbox.wait_for(lambda: len(picker.history) >= 2)
        assert "+86-25-0000-0000" in picker.text and "✅" not in picker.text
        assert await h.rows(SymptomReport) == []
        monkeypatch.setattr(AsyncSession, "flush", real_flush)
        user.send_command("/report")  # recovers when the database is back
        await h.sandbox.wait_for(lambda: user.last_message is not picker and user.last_message.buttons)
        again = user.last_message
        user.press(again, "s:urine_blood")
        await h.sandbox.wait_for(lambda: again.history)
        user.press(again, "s:_send")
        await h.sandbox.wait_for(lambda: len(again.history) >= 2)
        assert again.text.startswith("✅") and len(await h.rows(SymptomReport)) == 1
        assert_language(user.messages, locale)


@pytest.mark.parametrize("language_code, locale, button, user_id", CASES)
async def test_whole_course_ends_with_correct_summary(engine, database_url, language_code, locale, button, user_id):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, language_code, button, user_id)
        for day in range(1, 15):
            reminder = await reminder_at(h, user, DAY1 + timedelta(days=day - 1))
            if day != 5:  # day 5: silent, never answered
                user.press(reminder, reminder.buttons[0][1])
                await h.sandbox.wait_for(lambda: reminder.reply_markup is None)
            await h.tick(DAY1 + timedelta(days=day - 1, hours=15, minutes=59))
        await h.tick(datetime(2026, 12, 16, 0, 0, tzinfo=UTC))
        await h.sandbox.wait_for(lambda: "13" in user.last_message.text and "14" in user.last_message.text)
        states = [d.state for d in await h.rows(DoseDay)]
        assert states.count("taken") == 13 and states.count("not_reported") == 1
        assert_language(user.messages, locale)


async def test_answering_closes_the_days_other_reminders_even_one_still_on_its_way(engine, database_url):
    """A patient who taps Taken must not be asked again about that day by another of its messages:
    one delivered earlier, or one being sent at that very moment (Telegram slow to answer), which
    loses its buttons once it lands. A message asking "have you taken today's tablets?" after the
    answer could make a patient take a second dose."""
    async with running_bot(engine, database_url, delivery={"send_timeout_seconds": 15}) as h:
        user = await enrolled_with_course(h, "en", "English", 8701)
        reminder = await reminder_at(h, user, DAY1)
        answers = len(h.sandbox.callback_answers)
        user.press(reminder, reminder.buttons[1][1])  # remind me later
        await h.sandbox.wait_for(lambda: len(h.sandbox.callback_answers) > answers)
        snoozed = await reminder_at(h, user, DAY1 + timedelta(minutes=30))
        assert reminder.reply_markup is not None and snoozed.buttons
        h.sandbox.inject_fault(kind="slow", chat_id=8701, method="sendMessage", delay=6)
        h.clock.set(DAY1 + timedelta(hours=2))  # the follow-up is due
        h.rt.wake()
        await h.sandbox.wait_for(lambda: any(c.method == "sendMessage" and c.chat_id == 8701 and c.status == 0
                                             for c in h.sandbox.calls))  # on its way
        user.press(snoozed, snoozed.buttons[0][1])  # taken, on the snoozed reminder
        await h.sandbox.wait_for(lambda: snoozed.reply_markup is None and reminder.reply_markup is None)
        [day1] = await h.rows(DoseDay, DoseDay.day == 1)
        assert day1.state == "taken"
        assert reminder.text.startswith("✅") and "Taken" in reminder.text, reminder.text  # the day as it is now
        followup = await h.sandbox.wait_for(lambda: user.last_message if user.last_message not in (reminder, snoozed)
                                            and user.last_message.buttons else None)
        await wait_as_time_passes(h, lambda: followup.reply_markup is None)
        assert followup.text.startswith("✅") and "Taken" in followup.text, followup.text
