"""Alerts for the study team: an emergency report repeats on schedule until acknowledged and
escalates when not; acknowledgement edits every copy, each in its reader's language; forged
acknowledgements are refused and audited; two silent days raise exactly one alert."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bot.channels.port import Account
from bot.db.models import Alert, AlertMessage, Outbox
from bot.services import symptoms
from tests.coordinator.coord_helpers import (ADMIN_NJ, COORDINATOR_NJ, COORDINATOR_SH, ESCALATION_NJ, NURSE_IDS,
                                             NURSES, audits, enrol_direct, nurse, register, send, tap, tr)
from tests.e2e.harness import running_bot, wait_as_time_passes

UTC = timezone.utc
T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai, day 1 of the course


@pytest.mark.parametrize("nurse_id, locale", NURSES, ids=NURSE_IDS)
async def test_emergency_alert_repeats_escalates_and_every_copy_is_edited(engine, database_url, nurse_id, locale):
    async with running_bot(engine, database_url, start=T0) as h:
        await enrol_direct(h, 7401, "NJ-0401", locale="zh_Hans")
        await register(h, "NJ-0401")
        await h.tick()
        await symptoms.report(h.rt, account=Account.telegram(7401), codes=["black_stool"])
        [alert] = await h.rows(Alert, Alert.kind == "emergency_symptom")
        recipients = (COORDINATOR_NJ, ADMIN_NJ)  # no alert chat configured: each NJ coordinator privately

        def copies(chat_id):
            return [m for m in h.sandbox.messages(chat_id)
                    if f"a:{alert.id}" in str(m.reply_markup) + str(m.history)]

        await h.tick(T0)
        await h.sandbox.wait_for(lambda: all(len(copies(c)) == 1 for c in recipients))
        for minutes, expected in ((4, 1), (5, 2), (10, 3)):  # repeats every 5 minutes until acknowledged
            await h.tick(T0 + timedelta(minutes=minutes))
            await h.sandbox.wait_for(lambda: all(len(copies(c)) == expected for c in recipients))
        assert copies(ESCALATION_NJ) == []
        zh = tr("zh_Hans")
        still = zh._("Still not acknowledged (reminder {number}, first raised at {time})", number=2,
                     time=zh.time(T0))
        assert still in copies(COORDINATOR_NJ)[1].text and "🔁" not in copies(COORDINATOR_NJ)[0].text
        await h.tick(T0 + timedelta(minutes=15))  # not acknowledged in 15 minutes: escalated
        await h.sandbox.wait_for(lambda: len(copies(ESCALATION_NJ)) == 1)
        assert tr("zh_Hans")._("ESCALATED: not acknowledged in time") in copies(ESCALATION_NJ)[0].text
        assert await audits(h, "alert.escalated", entity_id=alert.id)
        assert len(await audits(h, "alert.repeated", entity_id=alert.id)) == 3

        h.clock.set(T0 + timedelta(minutes=16))
        coordinator = nurse(h, nurse_id, locale)
        tapped = copies(nurse_id)[-1]
        answer = await tap(h, coordinator, tapped, f"a:{alert.id}")
        assert answer["text"] == tr(locale)._("Acknowledged.")
        every = [m for c in (*recipients, ESCALATION_NJ) for m in copies(c)]
        assert len(every) == 2 * 4 + 1
        await h.sandbox.wait_for(lambda: all(m.reply_markup is None for m in every))
        for chat_id, chat_locale in ((COORDINATOR_NJ, "zh_Hans"), (ADMIN_NJ, "en"), (ESCALATION_NJ, "zh_Hans")):
            label = {COORDINATOR_NJ: "NJ nurse 1", ADMIN_NJ: "NJ data manager"}[nurse_id]  # a person, not an id
            acknowledged = tr(chat_locale)._("Acknowledged by {who} at {when}", who=label,
                                            when=tr(chat_locale).datetime(T0 + timedelta(minutes=16)))
            assert all(acknowledged in m.text and str(nurse_id) not in m.text for m in copies(chat_id)), chat_id
            assert all("🔁" not in m.text for m in copies(chat_id))  # acknowledged: no longer "still waiting"
        assert tr("zh_Hans")._("ESCALATED: not acknowledged in time") in copies(ESCALATION_NJ)[0].text
        [alert] = await h.rows(Alert, Alert.id == alert.id)
        assert alert.acknowledged_by == f"telegram:{nurse_id}" and alert.next_repeat_at is None
        assert len(await audits(h, "alert.acknowledged", entity_id=alert.id, actor_id=f"telegram:{nurse_id}")) == 1
        # no more repeats once acknowledged
        sent = len(h.sandbox.sent)
        await h.tick(T0 + timedelta(minutes=30))
        assert len(h.sandbox.sent) == sent
        assert len(await h.rows(AlertMessage, AlertMessage.alert_id == alert.id)) == 9


async def test_same_day_alert_escalates_at_end_of_working_day(engine, database_url):
    async with running_bot(engine, database_url, start=T0) as h:
        await enrol_direct(h, 7411, "NJ-0411")
        await symptoms.report(h.rt, account=Account.telegram(7411), codes=["urine_blood"])
        [alert] = await h.rows(Alert, Alert.kind == "same_day_symptom")
        assert alert.next_repeat_at is None  # no repeats for same-day alerts
        await h.tick(datetime(2026, 12, 2, 9, 29, tzinfo=UTC))  # 17:29 local
        assert not await audits(h, "alert.escalated", entity_id=alert.id)
        await h.tick(datetime(2026, 12, 2, 9, 30, tzinfo=UTC))  # 17:30: end of the working day
        await h.sandbox.wait_for(lambda: h.sandbox.messages(ESCALATION_NJ))
        assert await audits(h, "alert.escalated", entity_id=alert.id)


async def test_forged_and_foreign_acknowledgements_are_refused_and_audited(engine, database_url):
    async with running_bot(engine, database_url, start=T0) as h:
        patient = await enrol_direct(h, 7421, "NJ-0421", locale="en")
        await symptoms.report(h.rt, account=Account.telegram(7421), codes=["black_stool"])
        await h.tick(T0)
        [alert] = await h.rows(Alert, Alert.kind == "emergency_symptom")
        copy = await h.sandbox.wait_for(lambda: next(
            (m for m in h.sandbox.messages(COORDINATOR_NJ) if f"a:{alert.id}" in str(m.reply_markup)), None))
        # the patient forges the payload on a message in their own chat
        patient.send_command("/status")
        await h.sandbox.wait_for(lambda: patient.messages)
        forged = await tap(h, patient, patient.last_message, f"a:{alert.id}")
        assert forged["show_alert"]
        # a coordinator of another site taps a copy of it
        sh = nurse(h, COORDINATOR_SH, "zh_Hans")
        await send(h, sh, "/help")
        foreign = await tap(h, sh, sh.last_message, f"a:{alert.id}")
        assert foreign["show_alert"]
        # and an alert id that does not exist
        await tap(h, sh, sh.last_message, "a:999999")
        refusals = await audits(h, "access.refused", entity="alert")
        assert {(r.actor_id, r.entity_id) for r in refusals} == {
            ("telegram:7421", str(alert.id)), (f"telegram:{COORDINATOR_SH}", str(alert.id)),
            (f"telegram:{COORDINATOR_SH}", "999999")}
        [alert] = await h.rows(Alert, Alert.id == alert.id)
        assert alert.acknowledged_at is None and copy.reply_markup is not None


async def test_the_escalation_contact_may_acknowledge_what_it_is_paged_with(engine, database_url):
    """Found by the whole-trial simulation (seed 20270201): with no coordinator answering, the
    escalated alert paged everyone every 5 minutes for weeks, because the escalation contact's
    Acknowledge was refused. Another site's escalation contact is still refused."""
    async with running_bot(engine, database_url, start=T0) as h:
        await enrol_direct(h, 7431, "NJ-0431", locale="en")
        await symptoms.report(h.rt, account=Account.telegram(7431), codes=["black_stool"])
        await h.tick(T0)
        await h.tick(T0 + timedelta(minutes=15))
        [alert] = await h.rows(Alert, Alert.kind == "emergency_symptom")
        copy = await h.sandbox.wait_for(lambda: next(
            (m for m in h.sandbox.messages(ESCALATION_NJ) if f"a:{alert.id}" in str(m.reply_markup)), None))
        foreign = nurse(h, 100000019, "zh_Hans")  # site SH's escalation contact
        await send(h, foreign, "/help")
        assert (await tap(h, foreign, foreign.last_message, f"a:{alert.id}"))["show_alert"]
        contact = nurse(h, ESCALATION_NJ, "zh_Hans")
        answer = await tap(h, contact, copy, f"a:{alert.id}")
        assert answer["text"] == tr("zh_Hans")._("Acknowledged.")
        [alert] = await h.rows(Alert, Alert.id == alert.id)
        assert alert.acknowledged_by == f"telegram:{ESCALATION_NJ}" and alert.next_repeat_at is None
        [row] = await audits(h, "alert.acknowledged", entity_id=alert.id)
        assert row.actor_kind == "escalation"


async def test_two_silent_days_raise_one_alert(engine, database_url):
    async with running_bot(engine, database_url) as h:
        await enrol_direct(h, 7431, "NJ-0431")
        await register(h, "NJ-0431")
        await h.tick()
        for day in range(3):  # days 1-3 pass without an answer; each closes at local midnight
            await h.tick(datetime(2026, 12, 2, 0, 0, tzinfo=UTC) + timedelta(days=day))
            await h.tick(datetime(2026, 12, 2, 16, 0, tzinfo=UTC) + timedelta(days=day))
        alerts = await h.rows(Alert, Alert.kind == "consecutive_missed")
        assert len(alerts) == 1 and alerts[0].details["days"] == 2
        await h.sandbox.wait_for(lambda: any("NJ-0431" in (m.text or "") and f"a:{alerts[0].id}" in str(m.reply_markup)
                                             for m in h.sandbox.messages(COORDINATOR_NJ)))
        rows = await h.rows(Outbox, Outbox.alert_id == alerts[0].id)
        first_round = sorted(int(r.address) for r in rows if not r.payload.get("escalated"))
        assert first_round == sorted([COORDINATOR_NJ, ADMIN_NJ])  # one copy per NJ coordinator, no repeats


async def test_a_copy_still_on_its_way_when_the_alert_is_acknowledged_is_edited_once_it_lands(engine, database_url):
    """One coordinator acknowledges while the other's copy is still being sent (Telegram slow to
    answer): that copy, once delivered, must not go on asking for an acknowledgement."""
    async with running_bot(engine, database_url, start=T0, delivery={"send_timeout_seconds": 10}) as h:
        await enrol_direct(h, 7441, "NJ-0441", locale="en")
        await h.sandbox.wait_for(lambda: any("NJ-0441" in (m.text or "")  # the new-enrolment notice
                                             for m in h.sandbox.messages(ADMIN_NJ)))
        h.sandbox.inject_fault(kind="slow", chat_id=ADMIN_NJ, method="sendMessage", delay=4)
        await symptoms.report(h.rt, account=Account.telegram(7441), codes=["black_stool"])  # wakes the courier
        [alert] = await h.rows(Alert, Alert.kind == "emergency_symptom")
        button = f"a:{alert.id}"
        first = await h.sandbox.wait_for(lambda: next(
            (m for m in h.sandbox.messages(COORDINATOR_NJ) if button in str(m.reply_markup)), None))
        assert not [m for m in h.sandbox.messages(ADMIN_NJ) if button in str(m.reply_markup) + str(m.history)]
        answer = await tap(h, nurse(h, COORDINATOR_NJ, "zh_Hans"), first, button)
        assert answer["text"] == tr("zh_Hans")._("Acknowledged.")
        late = await h.sandbox.wait_for(lambda: next(
            (m for m in h.sandbox.messages(ADMIN_NJ) if button in str(m.reply_markup) + str(m.history)), None))
        await wait_as_time_passes(h, lambda: late.reply_markup is None)  # its edit looks again each second
        assert late.text.endswith("✅ " + tr("en")._("Acknowledged by {who} at {when}", who="NJ nurse 1",
                                                      when="2 Dec 11:00")), late.text  # in the admin's language
        assert first.reply_markup is None
