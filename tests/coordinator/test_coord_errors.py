"""Errors name the problem: a bad /cycle date shows an example with the coordinator's own site
prefix; /invite for another site says the site is not theirs; unknown commands point at /help."""

import pytest

from bot.db.models import Invitation
from tests.coordinator.coord_helpers import NURSE_IDS, NURSES, enrol_direct, nurse, send, tr
from tests.e2e.harness import COORDINATOR_SH, running_bot


@pytest.mark.parametrize("nurse_id, locale", NURSES, ids=NURSE_IDS)
async def test_a_bad_cycle_date_is_named_with_an_example(engine, database_url, nurse_id, locale):
    async with running_bot(engine, database_url) as h:
        await enrol_direct(h, 7801, "NJ-0801")
        t = tr(locale)
        [reply] = await send(h, nurse(h, nurse_id, locale), "/cycle", "NJ-0801 2026-13-01")
        assert reply.text == t._("“{value}” is not a date. Write it as year-month-day, for example: "
                                 "/cycle {subject} 2026-12-01", value="2026-13-01", subject="NJ-0801")
        [usage] = await send(h, nurse(h, nurse_id, locale), "/cycle")
        assert "/cycle NJ-017 2026-12-01" in usage.text
        [unknown] = await send(h, nurse(h, nurse_id, locale), "/cylce")
        assert unknown.text == t._("Unknown command. Send /help for the list of commands.")


async def test_invite_for_another_site_says_the_site_is_not_theirs(engine, database_url):
    async with running_bot(engine, database_url) as h:
        t = tr("zh_Hans")
        sh_nurse = nurse(h, COORDINATOR_SH, "zh_Hans")
        [reply] = await send(h, sh_nurse, "/invite", "NJ-0802")
        assert reply.text == t._("Site {site} is not yours, so you cannot invite patients there. Your site: {mine}.",
                                 site="NJ", mine="SH")
        [reply] = await send(h, sh_nurse, "/invite", "SH-0803 NJ")
        assert "NJ" in reply.text and reply.kind == "text"
        assert await h.rows(Invitation) == []
