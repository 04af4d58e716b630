"""Commands and side paths of the patient journey, through the sandbox."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from bot.db.models import Alert, AuditLog, Course, DoseDay, Patient, PatientMessage, SymptomReport
from bot.i18n import Translator
from bot.services import invitations
from tests.e2e.harness import assert_language, is_chinese, running_bot
from tests.e2e.test_patient_days import DAY1, enrolled_with_course, reminder_at
from tests.e2e.test_patient_journey import CASES, enrol

UTC = timezone.utc


async def reply_to(h, user, send):
    count = len(user.messages)
    send()
    await h.sandbox.wait_for(lambda: len(user.messages) > count)
    return user.last_message


async def test_commands_menu_registered_per_language(engine, database_url):
    async with running_bot(engine, database_url) as h:
        zh = h.sandbox.commands[("all_private_chats", "zh")]
        en = h.sandbox.commands[("all_private_chats", "en")]
        assert [c["command"] for c in zh] == [c["command"] for c in en]
        assert {"status", "report", "time", "language", "help", "stop"} <= {c["command"] for c in en}
        assert all(is_chinese(c["description"]) for c in zh) and not any(is_chinese(c["description"]) for c in en)


@pytest.mark.parametrize("helpers_on", [False, True])
async def test_the_family_helper_commands_are_in_the_menus_only_while_helpers_are_on(engine, database_url, helpers_on):
    async with running_bot(engine, database_url, helpers={"enabled": helpers_on}) as h:
        for language in ("zh", "en"):
            patient = [c["command"] for c in h.sandbox.commands[("all_private_chats", language)]]
            assert ("helpers" in patient) is helpers_on and {"status", "report", "stop"} <= set(patient)
        for nurse, chinese in ((100000001, True), (100000002, False)):  # each in their own language
            team = h.sandbox.commands[(f"chat:{nurse}", "")]
            assert ("helper" in [c["command"] for c in team]) is helpers_on
            assert {"patients", "alerts", "invite", "export"} <= {c["command"] for c in team}
            assert all(is_chinese(c["description"]) is chinese for c in team)


@pytest.mark.parametrize("language_code, locale, button, user_id", CASES)
async def test_declining_consent_enrols_nothing(engine, database_url, language_code, locale, button, user_id):
    async with running_bot(engine, database_url) as h:
        issued = await invitations.issue(h.rt, site_id="NJ", subject_id="NJ-555")
        user = h.sandbox.user(user_id, language_code=language_code)
        user.send_command("/start", issued.token)
        await h.sandbox.wait_for(lambda: user.messages)
        user.press(user.last_message, f"e:lang:{locale}")
        await h.sandbox.wait_for(lambda: user.last_message.history)
        consent = user.last_message
        assert "Telegram" in consent.text and "/stop" in consent.text
        user.press(consent, "e:consent:no")
        await h.sandbox.wait_for(lambda: len(consent.history) >= 2)
        assert await h.rows(Patient) == []
        assert await h.rows(AuditLog, AuditLog.action == "consent.declined")
        [invitation] = await h.rows(__import__("bot.db.models", fromlist=["Invitation"]).Invitation)
        assert invitation.used_at is None  # the token can still be used later
        assert_language(user.messages, locale)


@pytest.mark.parametrize("language_code, locale, button, user_id", CASES)
async def test_enrolled_user_with_new_link_is_not_rebound(engine, database_url, language_code, locale, button, user_id):
    async with running_bot(engine, database_url) as h:
        user, _ = await enrol(h, user_id, language_code, button, subject="NJ-600")
        second = await invitations.issue(h.rt, site_id="SH", subject_id="SH-601")
        answer = await reply_to(h, user, lambda: user.send_command("/start", second.token))
        assert answer.buttons == []
        [patient] = await h.rows(Patient)
        assert patient.subject_id == "NJ-600" and patient.site_id == "NJ"
        assert_language(user.messages, locale)


@pytest.mark.parametrize("language_code, locale, button, user_id", CASES)
async def test_missed_with_reason_and_advice(engine, database_url, language_code, locale, button, user_id):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, language_code, button, user_id)
        reminder = await reminder_at(h, user, DAY1)
        user.press(reminder, reminder.buttons[1][1].replace(":l", ":m"))
        await h.sandbox.wait_for(lambda: reminder.history and len(reminder.buttons) == 6)  # 5 reasons and Undo
        never_double = Translator(locale)._("Do not take two doses to make up for it. Take the next dose at the "
                                            "usual time on the next course day.")
        assert never_double in reminder.text
        user.press(reminder, reminder.buttons[1][1])  # side effects
        # Only Undo is left while the day is open.
        await h.sandbox.wait_for(lambda: len(reminder.buttons) == 1 and reminder.buttons[0][1].endswith(":u"))
        [day1] = await h.rows(DoseDay, DoseDay.day == 1)
        assert day1.state == "missed" and day1.missed_reason == "side_effects" and not day1.late
        assert_language(user.messages, locale)


async def test_an_unanswered_time_question_lapses_and_a_later_time_is_a_message_to_the_team(engine, database_url):
    async with running_bot(engine, database_url) as h:
        user, _ = await enrol(h, 7611, "en", "English", subject="NJ-7611")
        await reply_to(h, user, lambda: user.send_command("/time"))
        h.clock.advance(minutes=61)  # the question was open for an hour
        answer = await reply_to(h, user, lambda: user.send_text("21:30"))
        assert "21:30" not in answer.text and "passed to your study team" in answer.text
        [patient] = await h.rows(Patient)
        assert patient.reminder_time == "08:00"
        [kept] = await h.rows(PatientMessage)
        assert kept.patient_id == patient.id


@pytest.mark.parametrize("language_code, locale, button, user_id", CASES)
async def test_time_change_status_pause_and_resume(engine, database_url, language_code, locale, button, user_id):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, language_code, button, user_id)
        reminder = await reminder_at(h, user, DAY1)
        user.press(reminder, reminder.buttons[0][1])
        await h.sandbox.wait_for(lambda: reminder.reply_markup is None)
        await reply_to(h, user, lambda: user.send_command("/time"))
        done = await reply_to(h, user, lambda: user.send_text("21:30"))
        assert "21:30" in done.text
        days = {d.day: d for d in await h.rows(DoseDay)}
        assert days[1].due_at == DAY1  # answered day untouched
        assert days[2].due_at == datetime(2026, 12, 3, 13, 30, tzinfo=UTC)  # 21:30 Asia/Shanghai
        status = await reply_to(h, user, lambda: user.send_command("/status"))
        assert "✓" in status.text and "·" in status.text
        await reply_to(h, user, lambda: user.send_command("/stop"))
        await h.tick()
        assert await h.rows(Alert, Alert.kind == "patient_paused")
        count = len(user.messages)
        await h.tick(datetime(2026, 12, 3, 13, 30, tzinfo=UTC))
        assert len(user.messages) == count  # paused: no reminder
        await reply_to(h, user, lambda: user.send_command("/start"))
        [patient] = await h.rows(Patient)
        assert patient.status == "active"
        assert_language(user.messages, locale)


@pytest.mark.parametrize("language_code, locale, button, user_id", CASES)
async def test_patient_reports_chemo_finished(engine, database_url, language_code, locale, button, user_id):
    async with running_bot(engine, database_url) as h:
        user, _ = await enrol(h, user_id, language_code, button, subject="NJ-700")
        label = "💉 今天化疗结束" if locale == "zh_Hans" else "💉 Chemo finished today"
        question = await reply_to(h, user, lambda: user.send_text(label))
        assert await h.rows(Course) == []  # nothing is created before the patient confirms the dates
        assert ("12月2日" if locale == "zh_Hans" else "2 Dec") in question.text  # day 1 …
        assert ("12月15日" if locale == "zh_Hans" else "15 Dec") in question.text  # … to day 14
        user.press(question, question.buttons[0][1])
        await h.sandbox.wait_for(lambda: question.history and question.reply_markup is None)
        [course] = await h.rows(Course)
        assert course.source == "patient" and not course.confirmed
        assert course.first_day == date(2026, 12, 2)  # clock: 2026-12-01 09:00 Asia/Shanghai
        [alert] = await h.rows(Alert, Alert.kind == "patient_course_start")
        assert alert.next_repeat_at is not None  # asked again each working day until confirmed
        # The same report again conflicts with the course now registered: nothing changes, the team is told.
        count = len(user.messages)
        user.send_text(label)
        # The course plan may arrive meanwhile: wait for the question itself.
        again = await h.sandbox.wait_for(lambda: next((m for m in user.messages[count:] if m.buttons
                                                       and m.buttons[0][1].startswith("m:chemo.")), None))
        user.press(again, again.buttons[0][1])
        await h.sandbox.wait_for(lambda: again.history and again.reply_markup is None)
        assert len(await h.rows(Course)) == 1
        [conflict] = await h.rows(Alert, Alert.kind == "patient_course_conflict")
        assert conflict.level == "same_day" and conflict.details["chemo_end"] == "2026-12-01"
        assert await h.rows(AuditLog, AuditLog.action == "course.patient_report_conflict")
        assert_language(user.messages, locale)


async def test_the_confirm_course_alert_comes_back_each_working_day_until_confirmed(engine, database_url):
    async with running_bot(engine, database_url) as h:
        user, _ = await enrol(h, 7711, "en", "English", subject="NJ-711")
        question = await reply_to(h, user, lambda: user.send_text("💉 Chemo finished today"))
        user.press(question, question.buttons[0][1])
        await h.sandbox.wait_for(lambda: question.reply_markup is None)
        [alert] = await h.rows(Alert, Alert.kind == "patient_course_start")
        title = "confirm the course"
        copies = lambda: [m for m in h.sandbox.messages(100000002) if title in (m.text or "")]  # noqa: E731
        await h.sandbox.wait_for(lambda: len(copies()) == 1)
        # Tuesday 09:00 → next working-day start is Wednesday 08:00 local (00:00 UTC).
        assert alert.next_repeat_at == datetime(2026, 12, 2, 0, 0, tzinfo=timezone.utc)
        await h.tick(datetime(2026, 12, 2, 0, 1, tzinfo=timezone.utc))
        await h.sandbox.wait_for(lambda: len(copies()) == 2)
        [course] = await h.rows(Course)
        async with h.rt.session() as session:
            row = await session.get(Course, course.id)
            row.confirmed = True
            session.add(row)
            await session.commit()
        await h.tick(datetime(2026, 12, 3, 0, 1, tzinfo=timezone.utc))
        await h.tick()
        [alert] = await h.rows(Alert, Alert.kind == "patient_course_start")
        assert alert.next_repeat_at is None and len(copies()) == 2


@pytest.mark.parametrize("language_code, locale, button, user_id", CASES)
async def test_symptom_note_and_unknown_text(engine, database_url, language_code, locale, button, user_id):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, language_code, button, user_id)
        picker = await reply_to(h, user, lambda: user.send_command("/report"))
        user.press(picker, "s:small_bruise")
        await h.sandbox.wait_for(lambda: picker.history)
        user.press(picker, "s:_send")
        await h.sandbox.wait_for(lambda: len(picker.history) >= 2)
        await reply_to(h, user, lambda: user.send_text("on my left arm"))
        [report] = await h.rows(SymptomReport)
        assert report.level == "log" and report.note == "on my left arm"
        h.clock.advance(minutes=31)  # the note prompt has lapsed: later text is a message to the team
        answer = await reply_to(h, user, lambda: user.send_text("hello?"))
        assert "+86-25-0000-0000" in answer.text and "120" in answer.text
        [message] = await h.rows(PatientMessage)
        assert message.text == "hello?" and message.direction == "from_patient" and message.level == "info"
        [report] = await h.rows(SymptomReport)
        assert report.note == "on my left arm"  # never rewritten
        notes = await h.rows(AuditLog, AuditLog.action == "symptom.note_added")
        assert len(notes) == 1 and "left arm" not in str(notes[0].after)
        assert_language(user.messages, locale)


async def test_language_switch_changes_later_messages(engine, database_url):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, "en", "English", 7301)
        choice = await reply_to(h, user, lambda: user.send_command("/language"))
        user.press(choice, "m:lang.zh_Hans")
        await h.sandbox.wait_for(lambda: choice.history)
        reminder = await reminder_at(h, user, DAY1)
        assert is_chinese(reminder.text)
        [patient] = await h.rows(Patient)
        assert patient.locale == "zh_Hans"
