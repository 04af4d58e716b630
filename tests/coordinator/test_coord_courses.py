"""Correcting and cancelling courses (each asks for a reason; recorded days are never rewritten)
and confirming or correcting a course the patient reported. Both languages."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from bot.channels.port import Account
from bot.db.models import Alert, Course, DoseDay, DoseEvent, Patient
from bot.domain.dose import Answer
from bot.services import courses, doses
from tests.coordinator.coord_helpers import (ADMIN_NJ, COORDINATOR_NJ, NURSE_IDS, NURSES, audits, enrol_direct, nurse,
                                             register, send, tap, tr, type_text)
from tests.e2e.harness import running_bot

UTC = timezone.utc
SHANGHAI = ZoneInfo("Asia/Shanghai")


def local_eight(day: date) -> datetime:
    return datetime.combine(day, time(8, 0), SHANGHAI).astimezone(UTC)


@pytest.mark.parametrize("nurse_id, locale", NURSES, ids=NURSE_IDS)
async def test_correct_before_start_rebuilds_the_plan(engine, database_url, nurse_id, locale):
    async with running_bot(engine, database_url) as h:
        patient = await enrol_direct(h, 7701, "NJ-0701")
        course = await register(h, "NJ-0701")
        coordinator = nurse(h, nurse_id, locale)
        t = tr(locale)
        [preview] = await send(h, coordinator, "/correct", "NJ-0701 2026-12-03")
        assert t._("New: {first} – {last} (chemotherapy ended {chemo})", first=t.date(date(2026, 12, 4)),
                   last=t.date(date(2026, 12, 17)), chemo=t.date(date(2026, 12, 3))) in preview.text
        assert (await h.rows(Course))[0].chemo_end == date(2026, 12, 1)  # nothing changes before the reason
        await h.tick()  # the first plan has gone out; the scheduler may send the new one at any moment now
        before = len(patient.messages)
        [done] = await type_text(h, coordinator, "Chemotherapy delayed two days (platelets)")
        assert done.text.startswith("✅")
        [course] = await h.rows(Course)
        assert (course.chemo_end, course.first_day, course.last_day) == (date(2026, 12, 3), date(2026, 12, 4),
                                                                        date(2026, 12, 17))
        rows = sorted(await h.rows(DoseDay), key=lambda d: d.day)
        assert [d.local_date for d in rows] == [date(2026, 12, 4) + timedelta(days=i) for i in range(14)]
        assert all(d.due_at == local_eight(d.local_date) for d in rows)
        events = await h.rows(DoseEvent, DoseEvent.kind == "reanchor")
        assert len(events) == 14 and all("platelets" in e.reason for e in events)
        [row] = await audits(h, "course.reanchored", actor_id=f"telegram:{nurse_id}")
        assert row.reason == "Chemotherapy delayed two days (platelets)"
        assert row.before["first_day"] == "2026-12-02" and row.after["first_day"] == "2026-12-04"
        # the patient is sent the new plan, and nothing on the old first day
        await h.tick()
        await h.sandbox.wait_for(lambda: len(patient.messages) > before)
        assert tr("en").date(date(2026, 12, 4)) in patient.last_message.text
        en = tr("en")  # the patient reads what changed: old → new
        assert en._("Before: {first} – {last}", first=en.date(date(2026, 12, 2)),
                    last=en.date(date(2026, 12, 15))) in patient.last_message.text
        assert en._("Now: {first} – {last}", first=en.date(date(2026, 12, 4)),
                    last=en.date(date(2026, 12, 17))) in patient.last_message.text
        count = len(patient.messages)
        await h.tick(local_eight(date(2026, 12, 2)))
        assert len(patient.messages) == count


@pytest.mark.parametrize("nurse_id, locale", NURSES, ids=NURSE_IDS)
async def test_correct_after_start_keeps_recorded_days(engine, database_url, nurse_id, locale):
    async with running_bot(engine, database_url) as h:
        await enrol_direct(h, 7702, "NJ-0702")
        await register(h, "NJ-0702")
        await h.tick(local_eight(date(2026, 12, 2)))
        [day1] = await h.rows(DoseDay, DoseDay.day == 1)
        h.clock.set(local_eight(date(2026, 12, 2)) + timedelta(minutes=5))
        assert (await doses.answer(h.rt, account=Account.telegram(7702), dose_day_id=day1.id, choice=Answer.TAKEN)).status \
            == "recorded"
        await h.tick(local_eight(date(2026, 12, 3)))  # day 2 reminded
        coordinator = nurse(h, nurse_id, locale)
        t = tr(locale)
        [preview] = await send(h, coordinator, "/correct", "NJ-0702 2026-12-04")
        assert t._("The course has started: days already reminded or answered stay as recorded; "
                   "only the remaining days move.") in preview.text
        assert t._("Kept but outside the new course (not counted): {dates}",
                   dates=t.date(date(2026, 12, 2))) in preview.text
        assert t._("Days moved: {moved}; days added: {added}", moved=12, added=2) in preview.text
        await type_text(h, coordinator, "Chemo end date entered wrongly")
        rows = await h.rows(DoseDay)
        taken = next(d for d in rows if d.local_date == date(2026, 12, 2))
        assert taken.state == "taken" and taken.out_of_window and taken.day == -2  # kept, no longer counted
        reminded = next(d for d in rows if d.local_date == date(2026, 12, 3))
        assert reminded.state == "cancelled"  # reminded, unanswered, outside the corrected course: voided
        live = sorted((d for d in rows if d.state != "cancelled" and not d.out_of_window), key=lambda d: d.day)
        assert [(d.day, d.local_date) for d in live] == [(i + 1, date(2026, 12, 5) + timedelta(days=i))
                                                        for i in range(14)]
        [row] = await audits(h, "course.reanchored")
        assert row.after["out_of_window"] == ["2026-12-02"] and row.after["created_days"] == [13, 14]
        assert len(await h.rows(DoseEvent, DoseEvent.kind == "reanchor")) == 13  # 12 moves, 1 out of window


@pytest.mark.parametrize("nurse_id, locale", NURSES, ids=NURSE_IDS)
async def test_cancel_course_asks_reason_and_stops_its_reminders(engine, database_url, nurse_id, locale):
    async with running_bot(engine, database_url) as h:
        patient = await enrol_direct(h, 7703, "NJ-0703")
        await register(h, "NJ-0703")
        await h.tick()
        coordinator = nurse(h, nurse_id, locale)
        t = tr(locale)
        [question] = await send(h, coordinator, "/cancelcycle", "NJ-0703")
        assert question.text == t._("Cancel cycle {cycle} of {subject}? Days without an answer are voided and the "
                                    "patient is told; days already recorded stay. Send the reason in one message, "
                                    "or /cancel.", cycle=1, subject="NJ-0703")
        assert (await h.rows(Course))[0].status == "active"
        [done] = await type_text(h, coordinator, "Cycle postponed by oncologist")
        assert t._("Cancelled: {subject}, cycle {cycle}. No more reminders for it.", subject="NJ-0703",
                   cycle=1) in done.text
        [course] = await h.rows(Course)
        assert course.status == "cancelled" and {d.state for d in await h.rows(DoseDay)} == {"cancelled"}
        [row] = await audits(h, "course.cancelled", actor_id=f"telegram:{nurse_id}")
        assert row.reason == "Cycle postponed by oncologist" and row.after["voided_days"] == list(range(1, 15))
        await h.sandbox.wait_for(lambda: "cancelled" in patient.last_message.text)  # the patient is told
        count = len(patient.messages)
        await h.tick(local_eight(date(2026, 12, 2)))
        assert len(patient.messages) == count
        # the next cycle can be registered after a cancelled one
        [preview] = await send(h, coordinator, "/cycle", "NJ-0703 2026-12-08")
        assert t._("Register cycle {cycle} for {subject}?", cycle=2, subject="NJ-0703") in preview.text


@pytest.mark.parametrize("nurse_id, locale", NURSES, ids=NURSE_IDS)
async def test_patient_reported_course_confirm_or_correct(engine, database_url, nurse_id, locale):
    async with running_bot(engine, database_url) as h:
        await enrol_direct(h, 7704, "NJ-0704")
        await enrol_direct(h, 7705, "NJ-0705")
        t = tr(locale)
        coordinator = nurse(h, nurse_id, locale)
        reported = []
        for subject in ("NJ-0704", "NJ-0705"):
            [patient] = await h.rows(Patient, Patient.subject_id == subject)
            reported.append(await courses.patient_reported_chemo_end(h.rt, patient=patient, chemo_end=date(2026, 12, 1)))
        await h.tick()
        alerts = await h.rows(Alert, Alert.kind == "patient_course_start")
        copies = {}
        for alert in alerts:
            copies[alert.details["subject_id"]] = await h.sandbox.wait_for(lambda: next(
                (m for m in h.sandbox.messages(nurse_id) if f"a:{alert.id}" in str(m.reply_markup)), None))
        confirm_msg = copies["NJ-0704"]
        assert confirm_msg.button_texts[:2] == [t._("Confirm course"), t._("Correct date")]
        answer = await tap(h, coordinator, confirm_msg, confirm_msg.buttons[0][1])
        assert answer["text"] == t._("Course confirmed.")
        course = (await h.rows(Course, Course.id == reported[0].id))[0]
        assert course.confirmed and course.source == "patient"
        assert await audits(h, "course.confirmed", actor_id=f"telegram:{nurse_id}")
        await h.sandbox.wait_for(lambda: confirm_msg.reply_markup is None)
        other = ADMIN_NJ if nurse_id == COORDINATOR_NJ else COORDINATOR_NJ
        confirmed = next(a for a in alerts if a.details["subject_id"] == "NJ-0704")
        other_copy = next(m for m in h.sandbox.messages(other) if f"a:{confirmed.id}" in str(m.history))
        assert other_copy.reply_markup is None  # every copy shows the acknowledgement

        correct_msg = copies["NJ-0705"]
        before = len(coordinator.messages)
        await tap(h, coordinator, correct_msg, correct_msg.buttons[1][1])
        ask = await h.sandbox.wait_for(lambda: next((m for m in coordinator.messages[before:]
                                                     if "NJ-0705" in (m.text or "") and not m.buttons), None))
        assert t._("Send the correct chemotherapy end date for {subject} (cycle {cycle}) as YYYY-MM-DD, or /cancel.",
                   subject="NJ-0705", cycle=1) == ask.text
        [preview] = await type_text(h, coordinator, "2026-12-03")
        assert t._("Send the reason for this correction in one message, or /cancel.") in preview.text
        await type_text(h, coordinator, "Patient tapped on the wrong day")
        course = (await h.rows(Course, Course.id == reported[1].id))[0]
        assert course.chemo_end == date(2026, 12, 3) and course.confirmed
