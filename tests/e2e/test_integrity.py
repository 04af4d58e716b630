"""Trial data integrity under staff and patient actions (issue 11), end to end through the sandbox:
team hold vs patient pause, cancelled courses, one dose day per date, the correction rule,
reminder times that move, reminders that close with their day, double taps."""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.exc import IntegrityError

from bot.channels.port import Account
from bot.db.engine import session_factory
from bot.db.models import Alert, AuditLog, DoseDay, Outbox, Patient
from bot.domain.dose import Answer
from bot.render import coord_reports
from bot.services import courses, digest, doses, enrolment, invitations
from bot.services.coord_access import operator_actor
from tests.coordinator.coord_helpers import COORDINATOR_NJ, NURSE_IDS, NURSES, audits, enrol_direct, nurse, register, send, tr, type_text
from tests.e2e.harness import running_bot

UTC = timezone.utc
SHANGHAI = ZoneInfo("Asia/Shanghai")
OPERATOR = operator_actor()


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), SHANGHAI).astimezone(UTC)


def day_close(day: date) -> datetime:
    return local(day + timedelta(days=1), 0)


async def reminder_for(h, user, dose_id: int):
    return await h.sandbox.wait_for(lambda: next(
        (m for m in user.messages if any(d == f"d:{dose_id}:t" for _, d in m.buttons)), None))


async def live_days(h, subject: str) -> list[DoseDay]:
    [patient] = await h.rows(Patient, Patient.subject_id == subject)
    return sorted((d for d in await h.rows(DoseDay, DoseDay.patient_id == patient.id)
                   if d.state != "cancelled" and not d.out_of_window), key=lambda d: d.local_date)


# --- 1. who paused, and why -----------------------------------------------------------------

@pytest.mark.parametrize("locale", ["zh_Hans", "en"])
async def test_team_hold_cannot_be_lifted_by_the_patient_and_held_days_are_not_missed(engine, database_url, locale):
    async with running_bot(engine, database_url) as h:
        patient = await enrol_direct(h, 8101, "NJ-8101", locale=locale)
        await register(h, "NJ-8101")
        await h.tick()
        coordinator = nurse(h, COORDINATOR_NJ, "zh_Hans")
        await send(h, coordinator, "/pause", "NJ-8101 physician: hold study drug")
        [row] = await h.rows(Patient, Patient.subject_id == "NJ-8101")
        assert (row.status, row.pause_origin, row.pause_reason) == ("paused", "team", "physician: hold study drug")

        [reply] = await send(h, patient, "/start")
        t = tr(locale)
        assert "+86-25-0000-0000" in reply.text  # told whom to call
        assert t._("Nothing was changed.") in reply.text
        [row] = await h.rows(Patient, Patient.subject_id == "NJ-8101")
        assert row.status == "paused" and row.pause_origin == "team"
        assert await audits(h, "patient.resume_refused", actor_id="NJ-8101")
        assert not await audits(h, "patient.resumed")
        [stop] = await send(h, patient, "/stop")  # a /stop during the hold changes nothing either
        assert stop.text == reply.text
        [row] = await h.rows(Patient, Patient.subject_id == "NJ-8101")
        assert row.pause_origin == "team" and not await h.rows(Alert, Alert.kind == "patient_paused")

        count = len(patient.messages)
        for day in (date(2026, 12, 2), date(2026, 12, 3), date(2026, 12, 4)):
            await h.tick(local(day, 8))
            await h.tick(day_close(day))
        assert not [m for m in patient.messages[count:] if m.buttons]  # no reminder during the hold
        states = [d.state for d in sorted(await h.rows(DoseDay), key=lambda d: d.day)]
        assert states[:3] == ["held", "held", "held"]
        assert not await h.rows(Alert, Alert.kind == "consecutive_missed")
        assert len(await audits(h, "dose.closed_held")) == 3
        [card] = await send(h, coordinator, "/patient", "NJ-8101")  # the team sees the hold and its days
        assert "HHH" in card.text and tr("zh_Hans")._("on hold by the study team") in card.text
        assert "physician: hold study drug" in card.text
        built = await digest.build(h.rt, site_id="NJ")  # the morning digest too
        assert built.yesterday["held"] == [("NJ-8101", False)] and built.on_course[0].held
        assert "H " + tr("en")._("on hold by the study team: {names}", names="NJ-8101") in \
            "\n".join(coord_reports.digest_text(tr("en"), h.settings, built))
        [adherence_row] = built.adherence
        assert adherence_row[1].held == 3 and adherence_row[1].expected == 0

        await send(h, coordinator, "/resume", "NJ-8101")
        [row] = await h.rows(Patient, Patient.subject_id == "NJ-8101")
        assert row.status == "active" and row.pause_origin is None
        [resumed] = await h.rows(Alert, Alert.kind == "patient_resumed")
        assert resumed.level == "info" and resumed.details["was"] == "team"


async def test_a_patient_lifts_their_own_pause_and_the_site_is_told(engine, database_url):
    async with running_bot(engine, database_url) as h:
        patient = await enrol_direct(h, 8102, "NJ-8102")
        await send(h, patient, "/stop")
        [row] = await h.rows(Patient, Patient.subject_id == "NJ-8102")
        assert row.pause_origin == "patient"
        [reply] = await send(h, patient, "/start")
        assert reply.text == tr("en")._("Reminders are on again.")
        [resumed] = await h.rows(Alert, Alert.kind == "patient_resumed")
        assert resumed.details["by"] == "patient"
        # days closed during a patient's own pause stay "not reported" (the patient chose to stop)


# --- 2. cancel voids, one dose day per date --------------------------------------------------

@pytest.mark.parametrize("locale", ["zh_Hans", "en"])
async def test_cancel_after_the_morning_reminder_stops_everything_and_tells_the_patient(engine, database_url, locale):
    async with running_bot(engine, database_url) as h:
        patient = await enrol_direct(h, 8201, "NJ-8201", locale=locale)
        await register(h, "NJ-8201")
        await h.tick()
        await h.tick(local(date(2026, 12, 2), 8))
        [day1] = await h.rows(DoseDay, DoseDay.day == 1)
        reminder = await reminder_for(h, patient, day1.id)
        h.clock.set(local(date(2026, 12, 2), 9))
        await courses.cancel(h.rt, OPERATOR, subject_id="NJ-8201", cycle=1, reason="Cycle postponed")
        await h.tick()
        t = tr(locale)
        told_text = t._("Your study team has cancelled cycle {cycle} ({first} – {last}).", cycle=1,
                        first=t.date(date(2026, 12, 2)), last=t.date(date(2026, 12, 15)))
        told = await h.sandbox.wait_for(lambda: next((m for m in patient.messages if told_text in (m.text or "")),
                                                     None))
        assert told is not None
        await h.sandbox.wait_for(lambda: reminder.reply_markup is None)  # its buttons are gone
        count = len(patient.messages)
        await h.tick(local(date(2026, 12, 2), 10, 1))  # the follow-up would be due
        await h.tick(day_close(date(2026, 12, 2)))
        await h.tick(local(date(2026, 12, 3), 8, 1))  # the next-morning question and day 2 would be due
        assert len(patient.messages) == count
        assert {d.state for d in await h.rows(DoseDay)} == {"cancelled"}
        followups = await h.rows(Outbox, Outbox.kind == "followup")
        assert all(r.state == "skipped" for r in followups)
        assert not await h.rows(Outbox, Outbox.kind == "late_question")
        # a tap on the cancelled day's reminder records nothing
        result = await doses.answer(h.rt, account=Account.telegram(8201), dose_day_id=day1.id, choice=Answer.TAKEN)
        assert result.status == "closed" and (await h.rows(DoseDay, DoseDay.id == day1.id))[0].state == "cancelled"


async def test_cancel_and_register_again_gives_one_dose_day_per_date(engine, database_url):
    async with running_bot(engine, database_url) as h:
        patient = await enrol_direct(h, 8202, "NJ-8202")
        await register(h, "NJ-8202")
        await h.tick(local(date(2026, 12, 2), 8))
        [day1] = await h.rows(DoseDay, DoseDay.day == 1)
        await reminder_for(h, patient, day1.id)
        h.clock.set(local(date(2026, 12, 2), 9))
        await courses.cancel(h.rt, OPERATOR, subject_id="NJ-8202", cycle=1, reason="Entered twice")
        await register(h, "NJ-8202")  # the same chemotherapy end again
        await h.tick()
        days = await live_days(h, "NJ-8202")
        assert [d.local_date for d in days] == [date(2026, 12, 2) + timedelta(days=i) for i in range(14)]
        assert {d.cycle for d in days} == {2}
        count = sum(1 for m in patient.messages if m.buttons and m.buttons[0][1].startswith("d:"))
        await h.tick(local(date(2026, 12, 3), 8))
        reminders = [m for m in patient.messages if m.buttons and m.buttons[0][1].startswith("d:")]
        assert len(reminders) == count + 1  # one reminder for 3 Dec, not two
        # the database itself refuses a second live day on a date
        sample = days[3]
        async with session_factory(engine)() as session:
            session.add(DoseDay(patient_id=sample.patient_id, course_id=sample.course_id, cycle=9, day=1,
                                local_date=sample.local_date, due_at=sample.due_at, closes_at=sample.closes_at,
                                late_until=sample.late_until, state="scheduled"))
            with pytest.raises(IntegrityError):
                await session.commit()
        async with session_factory(engine)() as session:  # a cancelled one on the same date is fine
            session.add(DoseDay(patient_id=sample.patient_id, course_id=sample.course_id, cycle=9, day=2,
                                local_date=sample.local_date, due_at=sample.due_at, closes_at=sample.closes_at,
                                late_until=sample.late_until, state="cancelled"))
            await session.commit()


async def test_an_answered_day_of_a_cancelled_course_is_carried_not_doubled(engine, database_url):
    async with running_bot(engine, database_url) as h:
        await enrol_direct(h, 8203, "NJ-8203")
        await register(h, "NJ-8203")
        await h.tick(local(date(2026, 12, 2), 8))
        [day1] = await h.rows(DoseDay, DoseDay.day == 1)
        h.clock.set(local(date(2026, 12, 2), 8, 5))
        assert (await doses.answer(h.rt, account=Account.telegram(8203), dose_day_id=day1.id, choice=Answer.TAKEN)).status \
            == "recorded"
        await courses.cancel(h.rt, OPERATOR, subject_id="NJ-8203", cycle=1, reason="Wrong cycle")
        await register(h, "NJ-8203")
        days = await live_days(h, "NJ-8203")
        assert len(days) == 14 and len({d.local_date for d in days}) == 14
        carried = days[0]
        assert carried.id == day1.id and carried.state == "taken" and carried.cycle == 2
        assert sum(1 for d in await h.rows(DoseDay) if d.state == "taken") == 1


# --- 3. correction rule, rebind and /time -----------------------------------------------------

@pytest.mark.parametrize("nurse_id, locale", NURSES, ids=NURSE_IDS)
async def test_correction_after_two_taken_days_leaves_no_hole(engine, database_url, nurse_id, locale):
    async with running_bot(engine, database_url) as h:
        await enrol_direct(h, 8301, "NJ-8301")
        await register(h, "NJ-8301")
        for day, number in ((date(2026, 12, 2), 1), (date(2026, 12, 3), 2)):
            await h.tick(local(day, 8))
            [dose] = await h.rows(DoseDay, DoseDay.day == number)
            h.clock.set(local(day, 8, 5))
            await doses.answer(h.rt, account=Account.telegram(8301), dose_day_id=dose.id, choice=Answer.TAKEN)
        h.clock.set(local(date(2026, 12, 3), 20))
        coordinator = nurse(h, nurse_id, locale)
        t = tr(locale)
        [preview] = await send(h, coordinator, "/correct", "NJ-8301 2026-12-03")
        assert t._("Kept but outside the new course (not counted): {dates}", dates=", ".join(
            [t.date(date(2026, 12, 2)), t.date(date(2026, 12, 3))])) in preview.text
        assert t._("Days moved: {moved}; days added: {added}", moved=12, added=2) in preview.text
        await type_text(h, coordinator, "Chemotherapy ended on 3 Dec")
        days = await live_days(h, "NJ-8301")
        assert [d.local_date for d in days] == [date(2026, 12, 4) + timedelta(days=i) for i in range(14)]
        assert [d.day for d in days] == list(range(1, 15))
        assert all(d.due_at == local(d.local_date, 8) for d in days)
        kept = [d for d in await h.rows(DoseDay) if d.out_of_window]
        assert sorted((d.local_date, d.state) for d in kept) == [(date(2026, 12, 2), "taken"),
                                                                 (date(2026, 12, 3), "taken")]


# --- 3b. rebind and /time move the due instants ---------------------------------------------

async def test_time_command_and_rebind_move_every_untouched_day(engine, database_url):
    async with running_bot(engine, database_url) as h:
        patient = await enrol_direct(h, 8302, "NJ-8302")
        await register(h, "NJ-8302")
        await h.tick(local(date(2026, 12, 2), 8))  # day 1 reminded at 08:00
        issued = await invitations.issue(h.rt, site_id="NJ", subject_id="NJ-8302", purpose="rebind")
        h.clock.set(local(date(2026, 12, 2), 12))
        await enrolment.complete(h.rt, account=Account.telegram(8303), address=str(8303), token=issued.token, locale="en",
                                 reminder_time="21:00")
        days = sorted(await h.rows(DoseDay), key=lambda d: d.day)
        assert days[0].due_at == local(date(2026, 12, 2), 8)  # already reminded: history
        assert all(d.due_at == local(d.local_date, 21) for d in days[1:])
        new_phone = h.sandbox.user(8303, language_code="en")
        [status] = await send(h, new_phone, "/status")
        assert "21:00" in status.text
        await send(h, new_phone, "/time")
        await type_text(h, new_phone, "07:30")  # /time takes the same path
        days = sorted(await h.rows(DoseDay), key=lambda d: d.day)
        assert all(d.due_at == local(d.local_date, 7, 30) for d in days[1:])
        assert len(await audits(h, "patient.time_changed")) == 1
        assert not [m for m in patient.messages if "21:00" in (m.text or "")]  # the old phone hears nothing


# --- 4. reminders close with their day; stale buttons record nothing --------------------------

@pytest.mark.parametrize("locale", ["zh_Hans", "en"])
async def test_day_one_tap_on_day_two_records_nothing_and_points_to_the_right_path(engine, database_url, locale):
    async with running_bot(engine, database_url) as h:
        patient = await enrol_direct(h, 8401, "NJ-8401", locale=locale)
        await register(h, "NJ-8401")
        await h.tick(local(date(2026, 12, 2), 8))
        [day1] = await h.rows(DoseDay, DoseDay.day == 1)
        reminder = await reminder_for(h, patient, day1.id)
        await h.tick(day_close(date(2026, 12, 2)))
        await h.sandbox.wait_for(lambda: reminder.reply_markup is None)  # closed with its day
        t = tr(locale)
        assert t._("This day is over: {state}.", state=t._("no answer")) in reminder.text
        await h.tick(local(date(2026, 12, 3), 9))
        answers = len(h.sandbox.callback_answers)
        patient.press(reminder, f"d:{day1.id}:t")  # a stale tap on day 1's own "Taken"
        await h.sandbox.wait_for(lambda: len(h.sandbox.callback_answers) > answers)
        answer = h.sandbox.callback_answers[-1]
        assert answer["text"] == t._("This day is over, so this button no longer works. If we did not hear from you, "
                                     "we will ask you about it the next morning.")
        [day1] = await h.rows(DoseDay, DoseDay.id == day1.id)
        assert day1.state == "not_reported" and day1.source is None
        assert await audits(h, "dose.answer_refused", entity_id=day1.id)
        # the next-morning question is the way to answer it late, and says so in `source`
        question = await h.sandbox.wait_for(lambda: next(
            (m for m in patient.messages if any(d == f"d:{day1.id}:lt" for _, d in m.buttons)), None))
        patient.press(question, f"d:{day1.id}:lt")
        await h.sandbox.wait_for(lambda: question.reply_markup is None)
        [day1] = await h.rows(DoseDay, DoseDay.id == day1.id)
        assert (day1.state, day1.late, day1.source) == ("taken", True, "late_question")


async def test_a_double_tap_on_taken_records_once_and_logs_no_error(engine, database_url, caplog):
    async with running_bot(engine, database_url) as h:
        patient = await enrol_direct(h, 8402, "NJ-8402")
        await register(h, "NJ-8402")
        await h.tick(local(date(2026, 12, 2), 8))
        [day1] = await h.rows(DoseDay, DoseDay.day == 1)
        reminder = await reminder_for(h, patient, day1.id)
        answers = len(h.sandbox.callback_answers)
        patient.press(reminder, f"d:{day1.id}:t")
        patient.press(reminder, f"d:{day1.id}:t")
        await h.sandbox.wait_for(lambda: len(h.sandbox.callback_answers) >= answers + 2)
        await h.sandbox.wait_for(lambda: reminder.reply_markup is None)
        assert len(await audits(h, "dose.answered")) == 1
        assert len(h.sandbox.callback_answers) == answers + 2  # one popup per tap, never a second one
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, [r.getMessage() for r in errors]
        assert not await h.rows(AuditLog, AuditLog.action == "callback.rejected")


# --- 5. late registration is calm -------------------------------------------------------------

@pytest.mark.parametrize("locale", ["zh_Hans", "en"])
async def test_a_course_registered_five_days_late_sends_the_plan_first_and_asks_once(engine, database_url, locale):
    async with running_bot(engine, database_url, start=local(date(2026, 12, 6), 10)) as h:
        patient = await enrol_direct(h, 8501, "NJ-8501", locale=locale)
        await h.tick()
        count = len(patient.messages)
        await register(h, "NJ-8501", chemo_end=date(2026, 11, 30))  # day 1 = 1 Dec, five days ago
        await h.tick()
        await h.sandbox.wait_for(lambda: len(patient.messages) >= count + 3)
        plan, *rest = patient.messages[count:count + 3]
        # The plan comes first; today's reminder and the catch-up question may arrive in either order.
        [reminder] = [m for m in rest if m.buttons and m.buttons[0][1].endswith(":t")]
        [question] = [m for m in rest if m.buttons and m.buttons[0][1].endswith(":ct")]
        t = tr(locale)
        assert t._("First dose: {date}", date=t.date(date(2026, 12, 1))) in plan.text  # the plan comes first
        days = sorted(await h.rows(DoseDay), key=lambda d: d.day)
        assert [d.state for d in days[:5]] == ["before_registration"] * 5
        assert days[5].state == "scheduled" and reminder.buttons[0][1] == f"d:{days[5].id}:t"  # today, day 6
        assert t._("Day {day} of {total}", day=6, total=14) in reminder.text
        assert [data for _, data in question.buttons] == [f"d:{d.id}:ct" for d in days[:5]]
        # no missed alert, no next-morning question about days nobody told the patient of
        await h.tick(day_close(date(2026, 12, 6)))
        assert not await h.rows(Alert, Alert.kind == "consecutive_missed")
        assert not await h.rows(Outbox, Outbox.kind == "late_question", Outbox.dose_day_id != days[5].id)
        assert not [m for m in patient.messages if t._("Either answer is fine. Do not take an extra dose today.")
                    in (m.text or "") and str(days[0].id) in str(m.buttons)]
        # the catch-up answers are late reports with their own source; untapped days stay apart
        for dose in (days[1], days[3]):
            answers = len(h.sandbox.callback_answers)
            patient.press(question, f"d:{dose.id}:ct")
            await h.sandbox.wait_for(lambda: len(h.sandbox.callback_answers) > answers)
        await h.sandbox.wait_for(lambda: len(question.buttons) == 3)
        days = sorted(await h.rows(DoseDay), key=lambda d: d.day)
        assert [(d.state, d.source, d.late) for d in days[:5]] == [
            ("before_registration", None, False), ("taken", "catch_up", True), ("before_registration", None, False),
            ("taken", "catch_up", True), ("before_registration", None, False)]
        [registered] = await audits(h, "course.registered")
        assert registered.after["before_registration_days"] == [1, 2, 3, 4, 5]


async def test_a_year_typo_raises_no_alert_storm(engine, database_url):
    async with running_bot(engine, database_url, start=local(date(2026, 12, 6), 10)) as h:
        await enrol_direct(h, 8502, "NJ-8502")
        await register(h, "NJ-8502", chemo_end=date(2025, 12, 1))
        await h.tick()
        await h.tick(day_close(date(2026, 12, 6)))
        assert {d.state for d in await h.rows(DoseDay)} == {"before_registration"}
        assert not await h.rows(Alert, Alert.kind == "consecutive_missed")
        assert not await h.rows(Outbox, Outbox.kind == "catch_up")  # nothing recent to ask about


async def test_one_missed_alert_per_run_when_several_days_close_in_one_pass(engine, database_url):
    async with running_bot(engine, database_url) as h:
        await enrol_direct(h, 8503, "NJ-8503")
        await register(h, "NJ-8503")
        await h.tick()
        await h.tick(day_close(date(2026, 12, 6)))  # after downtime: five days close at once
        assert [d.state for d in sorted(await h.rows(DoseDay), key=lambda d: d.day)][:5] == ["not_reported"] * 5
        assert len(await h.rows(Alert, Alert.kind == "consecutive_missed")) == 1


# --- 6. enrolment is a server-side state machine; rebind keeps the story ----------------------

async def _start(h, user, token):
    user.send_command("/start", token)
    return await h.sandbox.wait_for(lambda: user.messages and user.last_message.buttons and user.last_message)


@pytest.mark.parametrize("language_code, locale", [("zh-hans", "zh_Hans"), ("en", "en")])
async def test_stale_or_forged_enrolment_buttons_are_refused_without_an_error(engine, database_url, caplog,
                                                                            language_code, locale):
    async with running_bot(engine, database_url) as h:
        stranger = h.sandbox.user(8601, language_code=language_code)
        await send(h, stranger, "/language")
        menu = stranger.last_message
        for data in ("e:lang:en", "e:time:08.00", "e:consent:yes", "e:confirm:yes"):
            answers = len(h.sandbox.callback_answers)
            stranger.press(menu, data)
            await h.sandbox.wait_for(lambda: len(h.sandbox.callback_answers) > answers)
            answer = h.sandbox.callback_answers[-1]
            assert answer["text"] == tr(locale)._("This step has expired. Please tap your invitation link again.")
        stranger.press(menu, "m:lang.en")  # a language choice by a stranger creates no half-dialog
        await h.sandbox.wait_for(lambda: menu.history)
        answers = len(h.sandbox.callback_answers)
        stranger.press(menu, "e:time:08.00")
        await h.sandbox.wait_for(lambda: len(h.sandbox.callback_answers) > answers)
        assert not await h.rows(Patient)
        assert len(await audits(h, "enrol.step_refused", actor_id="telegram:8601")) == 5
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert not errors, [r.getMessage() for r in errors]


async def test_a_crafted_consent_skip_is_refused_and_audited(engine, database_url):
    async with running_bot(engine, database_url) as h:
        issued = await invitations.issue(h.rt, site_id="NJ", subject_id="NJ-8602")
        user = h.sandbox.user(8602, language_code="en")
        welcome = await _start(h, user, issued.token)
        for data in ("e:lang:en", "e:time:08.00", "e:confirm:yes"):
            answers = len(h.sandbox.callback_answers)
            user.press(welcome, data)
            await h.sandbox.wait_for(lambda: len(h.sandbox.callback_answers) > answers)
        assert not await h.rows(Patient)  # no consent was ever recorded
        assert not await audits(h, "consent.given")
        refused = await audits(h, "enrol.step_refused", actor_id="telegram:8602")
        assert [r.reason for r in refused] == ["out_of_order", "out_of_order"]
        assert [r.before["step"] for r in refused] == ["consent", "consent"]


async def test_the_enrolment_dialog_survives_a_restart(engine, database_url):
    async with running_bot(engine, database_url) as h:
        issued = await invitations.issue(h.rt, site_id="NJ", subject_id="NJ-8603")
        user = h.sandbox.user(8603, language_code="en")
        welcome = await _start(h, user, issued.token)
        user.press(welcome, "e:lang:zh_Hans")
        await h.sandbox.wait_for(lambda: welcome.history)
        await h.restart()
        user.press(welcome, "e:consent:yes")
        await h.sandbox.wait_for(lambda: len(welcome.history) >= 2)
        user.press_button("21:00", welcome)
        summary = await h.sandbox.wait_for(lambda: len(user.messages) >= 2 and user.last_message)
        version = h.settings.trial.consent_version
        assert version in summary.text  # the consent version is shown
        user.press(summary, "e:confirm:yes")
        await h.sandbox.wait_for(lambda: len(user.messages) >= 3)
        [patient] = await h.rows(Patient)
        assert (patient.subject_id, patient.locale, patient.reminder_time) == ("NJ-8603", "zh_Hans", "21:00")
        [consent] = await audits(h, "consent.given")
        assert consent.after["consent_version"] == version


@pytest.mark.parametrize("language_code, locale", [("zh-hans", "zh_Hans"), ("en", "en")])
async def test_rebind_mid_course_shows_the_running_course_on_the_new_phone(engine, database_url, language_code,
                                                                          locale):
    async with running_bot(engine, database_url) as h:
        await enrol_direct(h, 8604, "NJ-8604", locale=locale)
        await register(h, "NJ-8604")
        await h.tick(local(date(2026, 12, 3), 9))
        issued = await invitations.issue(h.rt, site_id="NJ", subject_id="NJ-8604", purpose="rebind")
        phone = h.sandbox.user(8605, language_code=language_code)
        welcome = await _start(h, phone, issued.token)
        phone.press(welcome, f"e:lang:{locale}")
        await h.sandbox.wait_for(lambda: welcome.history)
        phone.press(welcome, "e:consent:yes")
        await h.sandbox.wait_for(lambda: len(welcome.history) >= 2)
        phone.press_button("08:00", welcome)
        summary = await h.sandbox.wait_for(lambda: len(phone.messages) >= 2 and phone.last_message)
        phone.press(summary, "e:confirm:yes")
        await h.sandbox.wait_for(lambda: len(phone.messages) >= 4)
        t = tr(locale)
        texts = "\n".join(m.text or "" for m in phone.messages)
        assert t._("Your study team will register your course after your chemotherapy, and you will get the plan "
                   "here. Use the buttons below at any time.") not in texts
        assert t._("First dose: {date}", date=t.date(date(2026, 12, 2))) in texts  # the running course
        assert t._("Today (day {day}): {state}", day=2, state=t._("waiting for your answer")) in texts
        [patient] = await h.rows(Patient)
        assert patient.account == str(8605)
