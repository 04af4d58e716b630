"""Issue 14, part 1: the prohibited-medicine check, end to end through the sandbox in both
languages. Asked with the plan and mid-course; "yes, TCM" raises a same-day alert and lands in
the export; "no" is recorded quietly (switched off: tests/e2e/test_companion_switches.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.db.models import Alert, AuditLog, ConmedReport
from bot.i18n import Translator
from bot.render.coordinator import alert_title
from bot.services import exports
from bot.services.coord_access import operator_actor
from tests.e2e.harness import COORDINATOR_NJ, assert_language, running_bot
from tests.e2e.test_patient_days import DAY1, enrolled_with_course, reminder_at
from tests.e2e.test_patient_journey import CASES

ON = {"conmed": {"enabled": True, "mid_course_day": 8}}


def conmed_questions(user):
    return [m for m in user.messages if any((d or "").startswith("cm:") for _, d in m.buttons)]


def data_ending(message, suffix: str) -> str:
    return next(d for _, d in message.buttons if (d or "").endswith(suffix))


async def start_question(h, user):
    await h.tick()
    await h.sandbox.wait_for(lambda: conmed_questions(user))
    [question] = conmed_questions(user)
    return question


@pytest.mark.parametrize("language_code, locale, button, user_id", CASES)
async def test_yes_tcm_raises_a_same_day_alert_and_lands_in_the_export(engine, database_url, language_code, locale,
                                                                       button, user_id):
    async with running_bot(engine, database_url, **ON) as h:
        user = await enrolled_with_course(h, language_code, button, user_id)
        question = await start_question(h, user)
        t = Translator(locale)
        assert t._("No, nothing new") in question.button_texts and question.protect_content
        user.press(question, data_ending(question, ":y"))  # Yes → the configured pick-list
        await h.sandbox.wait_for(lambda: any(d.endswith(":y:tcm") for _, d in question.buttons if d))
        assert ("中药或草药" if locale == "zh_Hans" else "Traditional Chinese medicine or herbs") in question.button_texts
        user.press(question, data_ending(question, ":y:tcm"))
        await h.sandbox.wait_for(lambda: not question.buttons)
        assert t._("Do not stop or start any medicine without asking your study doctor.") in question.text
        assert h.settings.sites[0].phone in question.text
        assert_language(user.messages, locale)

        [report] = await h.rows(ConmedReport)
        assert (report.answer, report.category, report.check_point, report.cycle) == ("yes", "tcm", "start", 1)
        [alert] = await h.rows(Alert, Alert.kind == "conmed_reported")
        assert alert.level == "same_day" and alert.escalate_at is not None and report.alert_id == alert.id
        assert alert.details["conmed_category"] == "tcm"
        title = alert_title(Translator("zh_Hans"), "conmed_reported")
        await h.sandbox.wait_for(lambda: any(title in (m.text or "") and "中药或草药" in (m.text or "")
                                             for m in h.sandbox.messages(COORDINATOR_NJ)))
        [audited] = await h.rows(AuditLog, AuditLog.action == "conmed.answered")
        assert audited.after["category"] == "tcm" and audited.actor_id == f"NJ-{user_id}"

        # a second tap on the same (now stale) button changes nothing
        answers = len(h.sandbox.callback_answers)
        user.press(question, f"cm:{report.course_id}:s:y:tcm")
        await h.sandbox.wait_for(lambda: len(h.sandbox.callback_answers) > answers)
        assert len(await h.rows(ConmedReport)) == 1 and len(await h.rows(Alert, Alert.kind == "conmed_reported")) == 1

        export = await exports.collect(h.rt, operator_actor())
        [row] = export.tables["concomitant_medications"]
        assert (row["subject_id"], row["answer"], row["category"], row["check_point"], row["alert_id"]) == (
            f"NJ-{user_id}", "yes", "tcm", "start", alert.id)
        codes = {(r["field"], r["code"]) for r in export.codebook}
        assert {("concomitant_medications.category", "tcm"), ("alerts.kind", "conmed_reported"),
                ("concomitant_medications.check_point", "start")} <= codes


@pytest.mark.parametrize("language_code, locale, button, user_id", CASES)
async def test_mid_course_question_comes_with_the_day_8_reminder_and_no_is_recorded_quietly(
        engine, database_url, language_code, locale, button, user_id):
    async with running_bot(engine, database_url, **ON) as h:
        user = await enrolled_with_course(h, language_code, button, user_id + 10)
        start = await start_question(h, user)
        user.press(start, data_ending(start, ":n"))
        await h.sandbox.wait_for(lambda: not start.buttons)
        assert Translator(locale)._("Thank you. Recorded: no new medicine.") in start.text
        for day in range(1, 8):  # nothing more is asked before the mid-course day
            await h.tick(DAY1 + timedelta(days=day - 1, hours=1))
        assert len(conmed_questions(user)) == 0
        await reminder_at(h, user, DAY1 + timedelta(days=7))  # day 8, 08:00 local
        await h.sandbox.wait_for(lambda: conmed_questions(user))
        [mid] = conmed_questions(user)
        assert ":m:" in mid.buttons[0][1]
        user.press(mid, data_ending(mid, ":n"))
        await h.sandbox.wait_for(lambda: not mid.buttons)
        reports = await h.rows(ConmedReport)
        assert sorted((r.check_point, r.answer) for r in reports) == [("mid", "no"), ("start", "no")]
        assert await h.rows(Alert, Alert.kind == "conmed_reported") == []
        assert_language(user.messages, locale)


async def test_unanswered_is_fine_and_a_foreign_tap_is_refused(engine, database_url):
    async with running_bot(engine, database_url, **ON) as h:
        user = await enrolled_with_course(h, "en", "English", 7301)
        question = await start_question(h, user)
        reminder = await reminder_at(h, user, DAY1)  # dosing goes on without an answer
        assert any((d or "").endswith(":t") for _, d in reminder.buttons)
        other = await enrolled_with_course(h, "en", "English", 7302)
        answers = len(h.sandbox.callback_answers)
        other.press(question, data_ending(question, ":n"))  # someone else's question
        await h.sandbox.wait_for(lambda: len(h.sandbox.callback_answers) > answers)
        assert await h.rows(ConmedReport) == []
        assert await h.rows(AuditLog, AuditLog.action == "callback.rejected", AuditLog.entity == "course")
