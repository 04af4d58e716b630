"""/patients with every status, /patient, pause and resume from the card, withdrawal (asks for a
reason, stops every message, keeps the data), and a new-phone link. Both languages."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta, timezone

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import update

from bot.channels.port import Account
from bot.db.engine import session_factory
from bot.db.models import DoseDay, Patient, SymptomReport
from bot.domain.dose import Answer
from bot.services import doses, enrolment, symptoms
from bot.services.queries import patient_by_account
from tests.coordinator.coord_helpers import (NURSE_IDS, NURSES, audits, enrol_direct, nurse, register, send, tap,
                                             tr, type_text)
from tests.e2e.harness import running_bot

UTC = timezone.utc
DEC4 = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)  # 11:00 local, day 3 of a course after chemo ending 1 Dec


async def answer(h, user_id: int, day: int, choice: Answer, at: datetime) -> None:
    h.clock.set(at)
    [dose] = await h.rows(DoseDay, DoseDay.day == day, DoseDay.patient_id == (await h.rows(
        Patient, Patient.account == str(user_id)))[0].id)
    result = await doses.answer(h.rt, account=Account.telegram(user_id), dose_day_id=dose.id, choice=choice)
    assert result.status == "recorded"


async def site_with_every_status(h):
    await enrol_direct(h, 7601, "NJ-0601")
    await enrol_direct(h, 7602, "NJ-0602")
    await enrol_direct(h, 7603, "NJ-0603")
    await enrol_direct(h, 7604, "NJ-0604")
    await enrol_direct(h, 7605, "NJ-0605")
    await register(h, "NJ-0602")
    await register(h, "NJ-0603", date(2026, 12, 20))
    await h.tick(datetime(2026, 12, 2, 0, 0, tzinfo=UTC))
    await answer(h, 7602, 1, Answer.TAKEN, datetime(2026, 12, 2, 1, 0, tzinfo=UTC))
    await h.tick(datetime(2026, 12, 3, 0, 0, tzinfo=UTC))
    await answer(h, 7602, 2, Answer.MISSED, datetime(2026, 12, 3, 1, 0, tzinfo=UTC))
    await symptoms.report(h.rt, account=Account.telegram(7602), codes=["small_bruise"])
    await h.tick(DEC4)
    async with session_factory(h.engine)() as session:
        await session.exec(update(Patient).where(Patient.subject_id == "NJ-0605").values(unreachable=True))
        await session.commit()


@pytest.mark.parametrize("nurse_id, locale", NURSES, ids=NURSE_IDS)
async def test_patient_list_card_pause_and_resume(engine, database_url, nurse_id, locale):
    async with running_bot(engine, database_url) as h:
        await site_with_every_status(h)
        coordinator = nurse(h, nurse_id, locale)
        t = tr(locale)
        [card] = await send(h, coordinator, "/patient", "NJ-0604")
        pause = next(data for label, data in card.buttons if label == t._("⏸ Pause"))
        before = len(coordinator.messages)
        await tap(h, coordinator, card, pause)  # a team hold asks why
        await h.sandbox.wait_for(lambda: len(coordinator.messages) > before)
        assert "NJ-0604" in coordinator.last_message.text and not await audits(h, "patient.paused")
        [done] = await type_text(h, coordinator, "physician: hold study drug")
        assert done.text == t._("{subject}: reminders paused.", subject="NJ-0604")
        [paused] = await audits(h, "patient.paused", actor_id=f"telegram:{nurse_id}", entity_id="NJ-0604")
        assert paused.reason == "physician: hold study drug" and paused.after["pause_origin"] == "team"

        [listing] = await send(h, coordinator, "/patients")
        lines = listing.text.splitlines()

        def line_of(subject):
            return next(line for line in lines if line.startswith(subject))

        assert t._("enrolled, no course yet") in line_of("NJ-0601")
        assert t._("on course, day {day} of {total}", day=3, total=14) in line_of("NJ-0602")
        assert "C1 ✓✗" + "·" * 12 + " 50%" in listing.text
        assert t._("between courses") in line_of("NJ-0603")
        assert t._("on hold by the study team") in line_of("NJ-0604")
        assert t._("unreachable") in line_of("NJ-0605")

        [card] = await send(h, coordinator, "/patient", "NJ-0602")
        assert t._("Cycle {cycle}: {first} – {last}", cycle=1, first=t.date(date(2026, 12, 2)),
                   last=t.date(date(2026, 12, 15))) in card.text
        assert t._("Day {day} ({date}): {state}", day=2, date=t.date(date(2026, 12, 3)),
                   state=t._("not taken")) in card.text
        assert t._("Symptom reports (latest {count}):", count=1) in card.text
        assert h.settings.triage.by_code()["small_bruise"].label(locale) in card.text

        [card] = await send(h, coordinator, "/resume", "NJ-0604")
        assert card.text == t._("{subject}: reminders resumed.", subject="NJ-0604")
        [patient] = await h.rows(Patient, Patient.subject_id == "NJ-0604")
        assert patient.status == "active"


@pytest.mark.parametrize("nurse_id, locale", NURSES, ids=NURSE_IDS)
async def test_withdraw_asks_reason_stops_messages_keeps_data(engine, database_url, nurse_id, locale):
    async with running_bot(engine, database_url) as h:
        await site_with_every_status(h)
        coordinator = nurse(h, nurse_id, locale)
        t = tr(locale)
        [question] = await send(h, coordinator, "/withdraw", "NJ-0602")
        assert t._("Withdraw {subject}? All messages to the patient stop; all data is kept. "
                   "Send the reason in one message, or /cancel.", subject="NJ-0602") == question.text
        assert (await h.rows(Patient, Patient.subject_id == "NJ-0602"))[0].status == "active"
        [done] = await type_text(h, coordinator, "Patient decision, consent withdrawn")
        assert t._("{subject} is withdrawn. No more messages will be sent; all data is kept.",
                   subject="NJ-0602") in done.text
        [patient] = await h.rows(Patient, Patient.subject_id == "NJ-0602")
        assert patient.status == "withdrawn"
        days = sorted(await h.rows(DoseDay, DoseDay.patient_id == patient.id), key=lambda d: d.day)
        assert [d.day for d in days] == [1, 2, 3]  # recorded and reminded days stay; the plan after today goes
        assert [d.state for d in days][:2] == ["taken", "missed"]
        [row] = await audits(h, "patient.withdrawn", entity_id="NJ-0602")
        assert row.reason == "Patient decision, consent withdrawn" and row.actor_id == f"telegram:{nurse_id}"
        assert row.before == {"status": "active"} and row.after["removed_days"] == {"1": list(range(4, 15))}
        received = len(h.sandbox.messages(7602))
        for day in range(1, 14):
            await h.tick(DEC4 + timedelta(days=day))
        assert len(h.sandbox.messages(7602)) == received
        assert len(await h.rows(SymptomReport)) == 1
        # a second withdrawal is refused, and an answer without an open question is not a reason
        [again] = await send(h, coordinator, "/withdraw", "NJ-0602")
        assert again.text == t._("This patient has withdrawn. Nothing was changed.")
        [help_text] = await type_text(h, coordinator, "hello")
        assert t._("Study team commands:") in help_text.text


@pytest.mark.parametrize("nurse_id, locale", NURSES, ids=NURSE_IDS)
async def test_withdraw_question_lapses_and_cancel(engine, database_url, nurse_id, locale):
    async with running_bot(engine, database_url) as h:
        await enrol_direct(h, 7611, "NJ-0611")
        coordinator = nurse(h, nurse_id, locale)
        t = tr(locale)
        await send(h, coordinator, "/withdraw", "NJ-0611")
        [stopped] = await send(h, coordinator, "/cancel")
        assert stopped.text == t._("Stopped. Nothing was changed.")
        await type_text(h, coordinator, "some text")
        await send(h, coordinator, "/withdraw", "NJ-0611")
        h.clock.advance(minutes=16)  # the question lapses: a late message is never taken as the reason
        [lapsed] = await type_text(h, coordinator, "forgot about this")
        assert lapsed.text == t._("This step has expired. Please send the command again.")
        [patient] = await h.rows(Patient)
        assert patient.status == "active" and not await audits(h, "patient.withdrawn")


@pytest.mark.parametrize("nurse_id, locale", NURSES, ids=NURSE_IDS)
async def test_rebind_moves_the_patient_to_a_new_phone(engine, database_url, nurse_id, locale):
    async with running_bot(engine, database_url) as h:
        old_phone = await enrol_direct(h, 7621, "NJ-0621")
        coordinator = nurse(h, nurse_id, locale)
        [card] = await send(h, coordinator, "/patient", "NJ-0621")
        rebind = next(data for label, data in card.buttons if data.startswith("pt:b:"))
        before = len(coordinator.messages)
        await tap(h, coordinator, card, rebind)
        photo = await h.sandbox.wait_for(
            lambda: next((m for m in coordinator.messages[before:] if m.kind == "photo"), None))
        assert tr(locale)._("New phone link for {subject}", subject="NJ-0621") in photo.text
        [barcode] = zxingcpp.read_barcodes(Image.open(io.BytesIO(photo.file_bytes)))
        token = barcode.text.split("start=", 1)[1]
        await enrolment.complete(h.rt, account=Account.telegram(7699), address=str(7699), token=token, locale="en",
                                 reminder_time="21:00")
        async with session_factory(h.engine)() as session:
            assert await patient_by_account(session, account=Account.telegram(7621)) is None
            moved = await patient_by_account(session, account=Account.telegram(7699))
        assert moved.subject_id == "NJ-0621" and moved.reminder_time == "21:00"
        assert await audits(h, "patient.rebound", entity_id="NJ-0621")
        [issued] = await audits(h, "invitation.issued", actor_id=f"telegram:{nurse_id}")
        assert issued.after["purpose"] == "rebind"
        old_phone.send_command("/status")
        await h.sandbox.wait_for(lambda: old_phone.messages)
