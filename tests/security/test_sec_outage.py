"""Database outage during a dose answer: the patient is never told it was saved."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db.models import DoseDay, DoseEvent
from tests.e2e.test_patient_days import DAY1, enrolled_with_course, reminder_at
from tests.e2e.harness import running_bot


async def test_dose_answer_during_outage_is_not_confirmed_and_recovers(engine, database_url, monkeypatch):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, "en", "English", 7601)
        reminder = await reminder_at(h, user, DAY1)
        real_commit = AsyncSession.commit

        async def down(self):
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))

        monkeypatch.setattr(AsyncSession, "commit", down)
        answers, count = len(h.sandbox.callback_answers), len(user.messages)
        user.press(reminder, reminder.buttons[0][1])
        await h.sandbox.wait_for(lambda: len(h.sandbox.callback_answers) > answers and len(user.messages) > count)
        assert "Recorded" not in (h.sandbox.callback_answers[-1].get("text") or "")
        [error_reply] = user.messages[count:]  # one answer for the update, with 120 and the site's phone
        assert "120" in error_reply.text and "+86-25-0000-0000" in error_reply.text
        assert reminder.reply_markup is not None and not reminder.history  # still shows the buttons
        assert [d.state for d in await h.rows(DoseDay, DoseDay.day == 1)] == ["scheduled"]

        monkeypatch.setattr(AsyncSession, "commit", real_commit)
        user.press(reminder, reminder.buttons[0][1])
        await h.sandbox.wait_for(lambda: reminder.reply_markup is None)
        [day1] = await h.rows(DoseDay, DoseDay.day == 1)
        assert day1.state == "taken"
        assert len(await h.rows(DoseEvent, DoseEvent.dose_day_id == day1.id)) == 1
