"""The patient's voice reaches the team: typed text and voice notes are kept, relayed and
answered; the keyword safety net answers danger words at once; the team can reply; notes show."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from bot.db.models import Alert, AuditLog, Outbox, PatientMessage, SymptomReport
from bot.i18n import Translator
from bot.render.coordinator import alert_title
from tests.coordinator.coord_helpers import tap
from tests.e2e.harness import ADMIN_NJ, COORDINATOR_NJ, running_bot, wait_as_time_passes
from tests.e2e.test_emergency_faults import NJ_PHONE, emergency_alert_for, open_picker, send_button, tick_symptom
from tests.e2e.test_patient_days import DAY1, enrolled_with_course, reminder_at

UTC = timezone.utc


FRIDAY_2230 = datetime(2026, 12, 4, 14, 30, tzinfo=UTC)  # Friday 22:30 in Shanghai


@pytest.mark.parametrize("language_code, user_id, text", [("zh-hans", 9101, "我发烧了，39度"),
                                                          ("en", 9102, "I have a fever, 39.2 C")])
async def test_typed_fever_gets_emergency_advice_at_once_and_an_emergency_alert(engine, database_url, language_code,
                                                                               user_id, text):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, language_code, "中文" if language_code == "zh-hans" else "English",
                                          user_id)
        count = len(user.messages)
        user.send_text(text)
        await h.sandbox.wait_for(lambda: len(user.messages) >= count + 2)
        advice, answer = user.messages[count:count + 2]
        assert advice.text.startswith("🚨") and "120" in advice.text and NJ_PHONE in advice.text
        assert answer.buttons == [(answer.buttons[0][0], "m:report")]  # the picker is offered
        [message] = await h.rows(PatientMessage)
        assert message.text == text and message.level == "emergency" and message.matched[0] == "fever"
        [alert] = await h.rows(Alert, Alert.kind == "patient_message")
        assert alert.level == "emergency" and alert.next_repeat_at is not None  # repeats until acknowledged
        title = "🚨 " + Translator("zh_Hans")._("Patient's message: EMERGENCY words")
        await h.sandbox.wait_for(lambda: any(title in (m.text or "") and text in (m.text or "")
                                             for m in h.sandbox.messages(COORDINATOR_NJ)))


async def test_plain_text_and_a_voice_note_are_kept_relayed_and_answered_and_the_team_can_reply(engine, database_url):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, "en", "English", 9201)
        count = len(user.messages)
        user.send_text("The tablets make me a bit sleepy, is that ok?")
        await h.sandbox.wait_for(lambda: len(user.messages) > count)
        answer = user.messages[count]
        assert "passed to your study team" in answer.text and "working hours" in answer.text
        assert not answer.text.startswith("🚨") and NJ_PHONE in answer.text

        count = len(user.messages)
        user.send_media("voice")
        await h.sandbox.wait_for(lambda: len(user.messages) > count)
        copies = lambda chat: [m for m in h.sandbox.messages(chat) if m.kind == "voice"]  # noqa: E731
        await h.sandbox.wait_for(lambda: copies(COORDINATOR_NJ) and copies(ADMIN_NJ))
        assert all(m.protect_content for m in copies(COORDINATOR_NJ) + copies(ADMIN_NJ))
        rows = await h.rows(PatientMessage)
        assert [(r.kind, r.direction, r.level) for r in rows] == [("text", "from_patient", "info"),
                                                                  ("voice", "from_patient", "info")]
        assert await h.rows(AuditLog, AuditLog.action == "message.received")

        # The admin (English) replies from the text alert.
        alert_copy = next(m for m in h.sandbox.messages(ADMIN_NJ) if "sleepy" in (m.text or ""))
        assert "Reply" in alert_copy.button_texts
        admin = h.sandbox.user(ADMIN_NJ, language_code="en")
        admin.press_button("Reply", alert_copy)
        await h.sandbox.wait_for(lambda: "Type your reply" in (admin.last_message.text or ""))
        count = len(user.messages)
        admin.send_text("Yes, that can happen. We will call you this afternoon.")
        await h.sandbox.wait_for(lambda: len(user.messages) > count, timeout=10)
        reply = user.messages[count]
        assert "Message from your study team" in reply.text and "call you this afternoon" in reply.text
        assert reply.protect_content
        await h.sandbox.wait_for(lambda: "Sent to NJ-9201" in (admin.last_message.text or ""))
        [out] = await h.rows(PatientMessage, PatientMessage.direction == "to_patient")
        assert out.author and str(ADMIN_NJ) not in out.author  # staff are named by role or label, never a raw id
        assert await h.rows(AuditLog, AuditLog.action == "message.replied")
        [alert] = await h.rows(Alert, Alert.id == out.alert_id)
        assert alert.acknowledged_at is not None


async def test_after_hours_the_answer_says_when_the_team_will_read_it(engine, database_url):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, "en", "English", 9301)
        h.clock.set(FRIDAY_2230)
        count = len(user.messages)
        user.send_text("I have some blood in my urine")
        await h.sandbox.wait_for(lambda: len(user.messages) > count)
        answer = user.messages[-1]
        assert "Monday" in answer.text or "Mon" in answer.text, answer.text
        assert "today" not in answer.text
        [alert] = await h.rows(Alert, Alert.kind == "patient_message")
        assert alert.level == "same_day"
        # Escalation waits for the next working period's end, not 17:30 on Friday night.
        assert alert.escalate_at == datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


async def test_a_symptom_note_is_added_to_the_open_alert(engine, database_url):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, "en", "English", 9401)
        picker = await open_picker(h, user)
        await tick_symptom(h, user, picker, "black_stool")
        user.press(picker, send_button(picker))
        await h.sandbox.wait_for(lambda: emergency_alert_for(h, COORDINATOR_NJ, "NJ-9401"))
        await h.sandbox.wait_for(lambda: "✅" in (picker.text or ""))
        user.send_text("since this morning, twice")
        [copy] = emergency_alert_for(h, COORDINATOR_NJ, "NJ-9401")
        await wait_as_time_passes(h, lambda: "since this morning, twice" in (copy.text or ""))
        assert copy.history  # edited in place, not a new message
        assert await h.rows(PatientMessage) == []  # a note, not a new message
        admin = h.sandbox.user(ADMIN_NJ, language_code="en")  # and on the patient card
        count = len(admin.messages)
        admin.send_command("/patient", "NJ-9401")
        await h.sandbox.wait_for(lambda: any("since this morning, twice" in (m.text or "")
                                             for m in admin.messages[count:]))


async def test_a_same_day_report_on_friday_night_names_the_next_working_day(engine, database_url):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, "en", "English", 9501)
        h.clock.set(FRIDAY_2230)
        picker = await open_picker(h, user)
        await tick_symptom(h, user, picker, "other_unwell")
        user.press(picker, send_button(picker))
        await h.sandbox.wait_for(lambda: "✅" in (picker.text or ""))
        assert "today" not in picker.text and "Mon" in picker.text, picker.text
        assert "describe it" in picker.text  # "something else": a description is asked for
        [alert] = await h.rows(Alert, Alert.kind == "same_day_symptom")
        assert alert.escalate_at == datetime(2026, 12, 7, 9, 30, tzinfo=UTC)  # Monday 17:30
        user.send_text("my mouth is very sore")
        title = alert_title(Translator("zh_Hans"), "same_day_symptom")
        await wait_as_time_passes(h, lambda: any("NJ-9501" in (m.text or "") and title in m.text
                                                  and "my mouth is very sore" in m.text
                                                  for m in h.sandbox.messages(COORDINATOR_NJ)))


async def test_a_note_reaches_a_chat_whose_alert_copy_was_never_confirmed(engine, database_url):
    """Telegram took the admin's copy but never answered (delivery unknown, no message to edit):
    the note goes to that chat as the alert again, which acknowledging then edits like any copy."""
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, "en", "English", 9511)
        h.sandbox.inject_fault(kind="timeout_after_accept", chat_id=ADMIN_NJ, method="sendMessage", delay=30)
        picker = await open_picker(h, user)
        await tick_symptom(h, user, picker, "other_unwell")
        user.press(picker, send_button(picker))
        await h.sandbox.wait_for(lambda: "describe it" in (picker.text or ""))
        [alert] = await h.rows(Alert, Alert.kind == "same_day_symptom")
        titles = {COORDINATOR_NJ: alert_title(Translator("zh_Hans"), "same_day_symptom"),
                  ADMIN_NJ: alert_title(Translator("en"), "same_day_symptom")}  # each in its reader's language
        copies = lambda chat: [m for m in h.sandbox.messages(chat) if titles[chat] in (m.text or "")]  # noqa: E731
        for _ in range(50):  # the admin's copy times out: its outcome is unknown
            if [r.state for r in await h.rows(Outbox, Outbox.alert_id == alert.id, Outbox.address == str(ADMIN_NJ))] \
                    == ["unknown"]:
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the admin's copy never became unknown")
        [unconfirmed] = copies(ADMIN_NJ)
        [first] = copies(COORDINATOR_NJ)
        user.send_text("my mouth is very sore")
        await wait_as_time_passes(h, lambda: "my mouth is very sore" in first.text
                                  and any("my mouth is very sore" in m.text for m in copies(ADMIN_NJ)))
        assert first.history and len(copies(COORDINATOR_NJ)) == 1  # edited in place where it could be
        [again] = [m for m in copies(ADMIN_NJ) if m is not unconfirmed]
        assert "my mouth is very sore" not in unconfirmed.text and again.reply_markup is not None
        answer = await tap(h, h.sandbox.user(COORDINATOR_NJ, language_code="zh-hans"), first, f"a:{alert.id}")
        assert answer["text"] == Translator("zh_Hans")._("Acknowledged.")
        await h.sandbox.wait_for(lambda: again.reply_markup is None and first.reply_markup is None)


@pytest.mark.parametrize("language_code, user_id, dairy", [("en", 9601, "No milk or dairy"), ("zh-hans", 9602, "奶")])
async def test_taken_names_both_windows_eat_after_and_no_dairy_or_minerals_before(engine, database_url, language_code,
                                                                                  user_id, dairy):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, language_code, "中文" if language_code == "zh-hans" else "English",
                                          user_id)
        reminder = await reminder_at(h, user, DAY1)  # 08:00 in Shanghai
        user.press(reminder, reminder.buttons[0][1])
        await h.sandbox.wait_for(lambda: reminder.reply_markup is None)
        assert "09:00" in reminder.text and "12:00" in reminder.text and dairy in reminder.text, reminder.text


async def test_a_note_prompt_survives_a_restart(engine, database_url):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, "en", "English", 9411)
        picker = await open_picker(h, user)
        await tick_symptom(h, user, picker, "small_bruise")
        user.press(picker, send_button(picker))
        await h.sandbox.wait_for(lambda: "✅" in (picker.text or ""))
        await h.restart()  # the prompt is in the database, not in the process
        count = len(user.messages)
        user.send_text("on my left arm")
        await h.sandbox.wait_for(lambda: len(user.messages) > count)
        assert "note was added" in user.messages[count].text
        [report] = await h.rows(SymptomReport)
        assert report.note == "on my left arm"
        assert await h.rows(PatientMessage) == []  # a note, not a message to relay
