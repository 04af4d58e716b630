"""Issue 14: with every feature switch off (the example configuration), none of the new messages
is queued or sent through a whole course, and the new export files stay empty."""

from __future__ import annotations

from datetime import timedelta

from bot.db.models import Outbox
from bot.services import exports
from bot.services.coord_access import operator_actor
from tests.e2e.harness import running_bot
from tests.e2e.test_patient_days import DAY1, enrolled_with_course

NEW_KINDS = ("conmed_check", "tablet_count", "visit_reminder")
NEW_PREFIXES = ("cm:", "tc:", "vs:")


def new_messages(user):
    return [m for m in user.messages if any((d or "").startswith(NEW_PREFIXES) for _, d in m.buttons)]


async def test_switches_off_nothing_new_is_sent(engine, database_url):
    async with running_bot(engine, database_url) as h:
        assert not (h.settings.conmed.enabled or h.settings.accountability.enabled or h.settings.visits.enabled)
        user = await enrolled_with_course(h, "en", "English", 7401)
        for day in range(0, 16):
            await h.tick(DAY1 + timedelta(days=day))
        assert new_messages(user) == []
        assert [r for r in await h.rows(Outbox) if r.kind in NEW_KINDS] == []
        export = await exports.collect(h.rt, operator_actor())
        assert export.tables["concomitant_medications"] == [] and export.tables["accountability"] == []
        assert export.tables["visits"] == []  # /visit itself refuses: test_companion_visits.py
