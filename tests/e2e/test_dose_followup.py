"""Answers that need a person: worrying "not today" reasons alert the team and reach the digest;
"not today" can be undone while the day is open; a coordinator corrects one day with a reason."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from bot.db.models import Alert, AuditLog, DoseDay, DoseEvent
from bot.i18n import Translator
from bot.render.coord_reports import digest_text
from bot.services import digest, exports
from bot.services.coord_access import operator_actor
from tests.coordinator.coord_helpers import nurse, send
from tests.e2e.harness import ADMIN_NJ, running_bot
from tests.e2e.test_patient_days import DAY1, enrolled_with_course, reminder_at


def data_of(message, prefix: str) -> str:
    return next(data for _, data in message.buttons if (data or "").startswith(prefix) or (data or "").endswith(prefix))


async def not_today(h, user):
    reminder = await reminder_at(h, user, DAY1)
    user.press(reminder, data_of(reminder, ":m"))
    await h.sandbox.wait_for(lambda: reminder.history and "r:" in "".join(d or "" for _, d in reminder.buttons))
    return reminder


@pytest.mark.parametrize("reason, en_words", [("ran_out", "no tablets left"), ("doctor", "doctor told them to stop"),
                                              ("side_effects", "Side effects")])
async def test_a_worrying_reason_alerts_the_team_today_and_is_in_the_digest(engine, database_url, reason, en_words):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, "en", "English", 9701)
        reminder = await not_today(h, user)
        user.press(reminder, data_of(reminder, f":{reason}"))
        await h.sandbox.wait_for(lambda: any(en_words in (m.text or "") and "NJ-9701" in (m.text or "")
                                             for m in h.sandbox.messages(ADMIN_NJ)))
        [alert] = await h.rows(Alert, Alert.kind == "missed_reason")
        assert alert.level == "same_day" and alert.details["reason"] == reason and alert.escalate_at is not None
        built = await digest.build(h.rt, site_id="NJ", now=DAY1 + timedelta(days=1), since=DAY1 - timedelta(hours=1))
        text = "\n".join(digest_text(Translator("en"), h.settings, built))
        assert "NJ-9701" in text and en_words in text


async def test_forgot_raises_no_alert(engine, database_url):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, "en", "English", 9711)
        reminder = await not_today(h, user)
        user.press(reminder, data_of(reminder, ":forgot"))
        await h.sandbox.wait_for(lambda: not any("r:" in (d or "") for _, d in reminder.buttons))
        assert await h.rows(Alert, Alert.kind == "missed_reason") == []


async def test_not_today_can_be_undone_while_the_day_is_open_then_taken(engine, database_url):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, "en", "English", 9801)
        reminder = await not_today(h, user)
        undo = data_of(reminder, ":u")
        h.clock.advance(minutes=30)
        user.press(reminder, undo)
        await h.sandbox.wait_for(lambda: any((d or "").endswith(":t") for _, d in reminder.buttons))
        user.press(reminder, data_of(reminder, ":t"))
        await h.sandbox.wait_for(lambda: "Taken, recorded" in (reminder.text or ""))
        [day1] = await h.rows(DoseDay, DoseDay.day == 1)
        assert day1.state == "taken" and day1.source == "button" and not day1.late
        events = [(e.kind, e.from_state, e.to_state) for e in await h.rows(DoseEvent, DoseEvent.dose_day_id == day1.id)]
        assert events == [("answer", "scheduled", "missed"), ("undo", "missed", "scheduled"),
                          ("answer", "scheduled", "taken")]
        assert await h.rows(AuditLog, AuditLog.action == "dose.undone")
        # After the day has closed, Undo no longer works: the team corrects it instead.
        answers = len(h.sandbox.callback_answers)
        await h.tick(DAY1 + timedelta(days=1, hours=1))
        user.press(reminder, undo)
        await h.sandbox.wait_for(lambda: len(h.sandbox.callback_answers) > answers)
        [day1] = await h.rows(DoseDay, DoseDay.day == 1)
        assert day1.state == "taken"


async def test_a_coordinator_corrects_one_day_with_a_reason_and_the_export_shows_it(engine, database_url):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, "en", "English", 9901)
        reminder = await not_today(h, user)
        admin = nurse(h, ADMIN_NJ, "en")
        [refusal] = await send(h, admin, "/dose", "NJ-9901 2026-12-02 taken")  # no reason
        assert "/dose SUBJECT" in refusal.text
        [reply] = await send(h, admin, "/dose", "NJ-9901 2026-12-02 taken patient phoned: took it at 09:10")
        assert "corrected" in reply.text
        [day1] = await h.rows(DoseDay, DoseDay.day == 1)
        assert day1.state == "taken" and day1.source == "coordinator"
        [audit] = await h.rows(AuditLog, AuditLog.action == "dose.corrected")
        assert audit.before["state"] == "missed" and audit.after["state"] == "taken" and "09:10" in audit.reason
        export = await exports.collect(h.rt, operator_actor())
        [row] = [r for r in export.tables["dose_days"] if r["subject_id"] == "NJ-9901" and r["day"] == 1]
        assert (row["state"], row["source"]) == ("taken", "coordinator")
        [event] = [e for e in export.tables["dose_events"] if e["kind"] == "correction"]
        assert "09:10" in event["reason"] and str(ADMIN_NJ) not in event["actor"]
        # The reminder is edited to its corrected state: no reason or Undo buttons left to tap.
        await h.sandbox.wait_for(lambda: reminder.reply_markup is None and "Taken" in (reminder.text or ""))
        assert date(2026, 12, 2) == day1.local_date
