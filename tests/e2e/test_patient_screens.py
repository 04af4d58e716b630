"""Issue 15 screens: enrolment Change, /time with a value, unknown commands, a withdrawn patient,
and notices (new enrolment, pause, resume) that nobody has to acknowledge."""

from __future__ import annotations

from datetime import date

import pytest

from bot.db.models import Alert, Patient
from bot.i18n import Translator
from bot.services import alerts, invitations, patients
from bot.services.coord_access import Actor
from tests.e2e.harness import COORDINATOR_NJ, running_bot
from tests.e2e.test_patient_commands import reply_to
from tests.e2e.test_patient_journey import CASES, enrol

OPERATOR = Actor(kind="operator", id="test", home_site=None, sites=None)


@pytest.mark.parametrize(("language_code", "locale", "button", "user_id"), CASES)
async def test_enrolment_summary_change_goes_back_and_the_final_message_keeps_the_details(
        engine, database_url, language_code, locale, button, user_id):
    t = Translator(locale, "Asia/Shanghai")
    async with running_bot(engine, database_url) as h:
        issued = await invitations.issue(h.rt, site_id="NJ", subject_id="NJ-0901")
        user = h.sandbox.user(user_id, language_code=language_code)
        await reply_to(h, user, lambda: user.send_command("/start", issued.token))
        question = user.last_message
        user.press(question, f"e:lang:{locale}")
        await h.sandbox.wait_for(lambda: len(question.history) >= 1)
        user.press(question, "e:consent:yes")
        await h.sandbox.wait_for(lambda: len(question.history) >= 2)
        summary = await reply_to(h, user, lambda: user.press_button("08:00", question))
        assert question.buttons == [] and "08:00" in question.text  # the answer stays, its buttons go
        assert t._("Change time") in summary.button_texts
        user.press_button(t._("Change time"), summary)
        await h.sandbox.wait_for(lambda: summary.buttons and "21:00" in summary.button_texts)
        summary2 = await reply_to(h, user, lambda: user.press_button("21:00", summary))
        user.press_button(t._("Change language"), summary2)  # back to the language, then the consent again
        await h.sandbox.wait_for(lambda: "English" in " ".join(summary2.button_texts))
        user.press(summary2, f"e:lang:{locale}")
        await h.sandbox.wait_for(lambda: f"e:consent:yes" in [d for _, d in summary2.buttons])
        user.press(summary2, "e:consent:yes")
        await h.sandbox.wait_for(lambda: "22:00" in summary2.button_texts)
        final = await reply_to(h, user, lambda: user.press_button("22:00", summary2))
        user.press(final, "e:confirm:yes")
        await h.sandbox.wait_for(lambda: final.buttons == [] and len(final.history) >= 1)
        assert t._("Daily reminder at {time}", time="22:00") in final.text
        [patient] = await h.rows(Patient)
        assert patient.reminder_time == "22:00"


@pytest.mark.parametrize(("language_code", "locale", "button", "user_id"), CASES)
async def test_time_with_a_value_unknown_commands_and_a_withdrawn_patient(
        engine, database_url, language_code, locale, button, user_id):
    t = Translator(locale, "Asia/Shanghai")
    async with running_bot(engine, database_url) as h:
        user, _ = await enrol(h, user_id, language_code, button, subject="NJ-0902")
        done = await reply_to(h, user, lambda: user.send_command("/time", "7:30"))
        assert "07:30" in done.text
        [patient] = await h.rows(Patient)
        assert patient.reminder_time == "07:30"
        unknown = await reply_to(h, user, lambda: user.send_command("/stats"))
        assert unknown.text.startswith(t._("Sorry, I do not know that command.")) and "/status" in unknown.text
        await patients.withdraw(h.rt, OPERATOR, subject_id="NJ-0902", reason="consent withdrawn")
        left = await reply_to(h, user, lambda: user.send_text("hello?"))
        assert t._("You have left the study's reminders, so this bot no longer sends you any.") in left.text
        assert h.settings.site("NJ").phone in left.text
        left = await reply_to(h, user, lambda: user.send_command("/status"))
        assert h.settings.site("NJ").phone in left.text


async def test_notices_need_no_acknowledgement_and_a_resume_closes_the_pause_notice(engine, database_url):
    async with running_bot(engine, database_url) as h:
        user, _ = await enrol(h, 7003, "en", "English", subject="NJ-0903")
        await reply_to(h, user, lambda: user.send_command("/stop"))
        await h.tick()
        nurse = h.sandbox.user(COORDINATOR_NJ, language_code="zh-hans")
        await h.sandbox.wait_for(lambda: len(nurse.messages) >= 2)
        assert all(m.buttons == [] for m in nurse.messages)  # new enrolment, paused: nothing to acknowledge
        [paused] = await h.rows(Alert, Alert.kind == "patient_paused")
        assert paused.next_repeat_at is None and paused.escalate_at is None
        assert await alerts.open_alerts(h.rt, OPERATOR) == []
        await reply_to(h, user, lambda: user.send_command("/start"))
        [paused] = await h.rows(Alert, Alert.kind == "patient_paused")
        assert paused.acknowledged_at is not None  # closed by the resume
        assert await alerts.open_alerts(h.rt, OPERATOR) == []


async def test_confirm_course_edits_the_alert_with_what_was_confirmed_by_whom_and_when(engine, database_url):
    async with running_bot(engine, database_url) as h:
        user, _ = await enrol(h, 7004, "en", "English", subject="NJ-0904")
        question = await reply_to(h, user, lambda: user.send_text("💉 Chemo finished today"))
        user.press(question, question.buttons[0][1])
        await h.sandbox.wait_for(lambda: question.history and question.reply_markup is None)
        await h.tick()
        nurse = h.sandbox.user(COORDINATOR_NJ, language_code="zh-hans")
        alert = await h.sandbox.wait_for(lambda: next((m for m in nurse.messages
                                                        if any((d or "").startswith("pc:") for _, d in m.buttons)), None))
        user_data = next(d for _, d in alert.buttons if d.startswith("pc:"))
        nurse.press(alert, user_data)
        t = Translator("zh_Hans", "Asia/Shanghai")
        await h.sandbox.wait_for(lambda: "已于" in (alert.text or "") and alert.reply_markup is None)
        assert t._("Course confirmed by {who} at {when}: cycle {cycle}, {first} – {last}.", who="NJ nurse 1",
                   when=t.datetime(h.clock.now()), cycle=1, first=t.date(date(2026, 12, 2)),
                   last=t.date(date(2026, 12, 15))) in alert.text
