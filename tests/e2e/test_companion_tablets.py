"""Issue 14, part 3: tablet accountability, end to end through the sandbox in both languages.
At the end of a course the patient counts the tablets left; the team sees the difference from
the dose record on /patient, in the digest and in accountability.csv."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bot.channels.port import Account
from bot.db.models import Alert, AuditLog, DoseDay, TabletCount
from bot.domain.dose import Answer
from bot.i18n import Translator
from bot.render.coord_reports import digest_text
from bot.services import digest, doses, exports
from bot.services.coord_access import operator_actor
from tests.coordinator.coord_helpers import nurse, send, type_text
from tests.e2e.harness import ADMIN_NJ, COORDINATOR_NJ, assert_language, running_bot
from tests.e2e.test_patient_days import DAY1, enrolled_with_course
from tests.e2e.test_patient_journey import CASES

UTC = timezone.utc
ON = {"accountability": {"enabled": True, "tablets_per_course": 14, "tolerance": 1}}
LAST_DAY_CLOSED = datetime(2026, 12, 15, 16, 0, tzinfo=UTC)  # 24:00 Shanghai on day 14
NEXT_MORNING = DAY1 + timedelta(days=14)  # 08:00 Shanghai the day after day 14


def tablet_questions(user):
    return [m for m in user.messages if any((d or "").startswith("tc:") for _, d in m.buttons)]


async def course_answered(h, user_id: int, *, taken: int, ran_out_last: bool = False) -> None:
    """Days 1..taken answered Taken on their own day; the last day 'not today: ran out' if asked."""
    days = sorted(await h.rows(DoseDay), key=lambda d: d.day)
    for dose in days:
        await h.tick(dose.due_at + timedelta(minutes=1))
        if dose.day <= taken:
            result = await doses.answer(h.rt, account=Account.telegram(user_id), dose_day_id=dose.id, choice=Answer.TAKEN)
            assert result.status == "recorded"
        elif ran_out_last and dose.day == len(days):
            await doses.answer(h.rt, account=Account.telegram(user_id), dose_day_id=dose.id, choice=Answer.MISSED)
            await doses.add_missed_reason(h.rt, account=Account.telegram(user_id), dose_day_id=dose.id, reason="ran_out")


async def tablet_question(h, user):
    await h.tick(LAST_DAY_CLOSED + timedelta(hours=1))  # 01:00 local: not at night
    assert tablet_questions(user) == []
    await h.tick(NEXT_MORNING)
    await h.sandbox.wait_for(lambda: tablet_questions(user))
    [question] = tablet_questions(user)
    return question


@pytest.mark.parametrize("language_code, locale, button, user_id", CASES)
async def test_three_left_where_none_expected_shows_a_difference_of_three(engine, database_url, language_code, locale,
                                                                         button, user_id):
    async with running_bot(engine, database_url, **ON) as h:
        user = await enrolled_with_course(h, language_code, button, user_id)
        await course_answered(h, user_id, taken=14)
        question = await tablet_question(h, user)
        assert h.settings.medication.name(locale) in question.text and question.protect_content
        user.press(question, next(d for _, d in question.buttons if d.endswith(":3")))
        await h.sandbox.wait_for(lambda: not question.buttons)
        assert Translator(locale)._("Thank you. Recorded: {count} tablets left.", count=3) in question.text
        assert_language(user.messages, locale)

        [count] = await h.rows(TabletCount)
        assert (count.reported_left, count.expected_left, count.dispensed, count.source) == (3, 0, 14, "button")
        [alert] = await h.rows(Alert, Alert.kind == "tablet_count_difference")
        assert alert.level == "info" and alert.details["difference"] == 3 and count.alert_id == alert.id
        assert await h.rows(AuditLog, AuditLog.action == "tablets.counted")

        for staff, staff_locale in ((ADMIN_NJ, "en"), (COORDINATOR_NJ, "zh_Hans")):
            [card] = await send(h, nurse(h, staff, staff_locale), "/patient", f"NJ-{user_id}")
            assert "14 / 3 / 0 / +3" in card.text
        built = await digest.build(h.rt, site_id="NJ", now=h.rt.now(), since=NEXT_MORNING - timedelta(hours=1))
        text = "\n".join(digest_text(Translator("en"), h.settings, built))
        assert f"NJ-{user_id}, cycle 1: 3 left, 0 expected (difference +3)" in text

        export = await exports.collect(h.rt, operator_actor())
        [row] = export.tables["accountability"]
        assert (row["dispensed"], row["reported_left"], row["expected_left"], row["difference"]) == (14, 3, 0, 3)
        assert row["alert_id"] == alert.id and row["source"] == "button"


async def test_more_than_five_then_typed_and_a_ran_out_day_is_linked(engine, database_url):
    async with running_bot(engine, database_url, **ON) as h:
        user = await enrolled_with_course(h, "en", "English", 7501)
        await course_answered(h, 7501, taken=13, ran_out_last=True)
        question = await tablet_question(h, user)
        user.press(question, next(d for _, d in question.buttons if d.endswith(":m")))
        await h.sandbox.wait_for(lambda: not question.buttons)
        assert "type the number" in question.text
        [reply] = await type_text(h, user, "0")
        assert "Recorded: 0 tablets left" in reply.text
        [count] = await h.rows(TabletCount)
        assert (count.reported_left, count.expected_left, count.source) == (0, 1, "typed")
        assert await h.rows(Alert, Alert.kind == "tablet_count_difference") == []  # within the tolerance of 1
        [card] = await send(h, nurse(h, ADMIN_NJ, "en"), "/patient", "NJ-7501")
        assert "14 / 0 / 1 / -1" in card.text and "ran out: days 14" in card.text
        export = await exports.collect(h.rt, operator_actor())
        [row] = export.tables["accountability"]
        assert (row["difference"], row["ran_out_days"], row["source"]) == (-1, "14", "typed")
        # a later number is an ordinary message again (kept and relayed), not a second count
        [later] = await type_text(h, user, "5")
        assert "passed to your study team" in later.text and len(await h.rows(TabletCount)) == 1
