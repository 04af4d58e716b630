"""Dose-day rules through the services alone (no Telegram)."""

from __future__ import annotations

from datetime import time, timedelta

from sqlmodel import select

from bot.channels.port import Account
from bot.db.models import DoseDay, DoseEvent
from bot.domain.dose import Answer, AnswerSource, DoseState
from bot.services import doses


async def _events(world, dose_id: int) -> list[DoseEvent]:
    async with world.rt.session() as session:
        return list((await session.exec(select(DoseEvent).where(DoseEvent.dose_day_id == dose_id))).all())


async def test_a_course_is_fourteen_days_from_the_day_after_chemotherapy(world):
    patient = await world.enrol()
    chemo_end = world.today(patient) - timedelta(days=1)
    await world.course(patient, chemo_end=chemo_end)
    days = await world.days(patient)
    assert [d.day for d in days] == list(range(1, 15))
    assert [d.local_date for d in days] == [chemo_end + timedelta(days=n) for n in range(1, 15)]
    assert {d.state for d in days} == {DoseState.SCHEDULED}


async def test_taken_twice_records_once_and_the_second_tap_is_told_already(world):
    patient = await world.enrol()
    await world.course(patient)
    first = await world.day(patient, 1)
    world.at_local(patient, first.local_date, time(8, 5))
    result = await doses.answer(world.rt, account=Account.parse(patient.account_key), dose_day_id=first.id,
                                choice=Answer.TAKEN)
    again = await doses.answer(world.rt, account=Account.parse(patient.account_key), dose_day_id=first.id,
                               choice=Answer.MISSED)
    assert (result.status, again.status) == ("recorded", "already")
    # What the confirmation is drawn from: the day as recorded, not as it was read.
    assert (result.dose.state, result.dose.answered_at, result.dose.source) == (DoseState.TAKEN, world.clock.now(),
                                                                               AnswerSource.BUTTON)
    assert (await world.day(patient, 1)).state == DoseState.TAKEN
    assert [e.to_state for e in await _events(world, first.id)] == [DoseState.TAKEN]


async def test_another_patients_day_is_refused_and_unchanged(world):
    owner, stranger = await world.enrol(), await world.enrol()
    await world.course(owner)
    first = await world.day(owner, 1)
    world.at_local(owner, first.local_date, time(8, 5))
    result = await doses.answer(world.rt, account=Account.parse(stranger.account_key), dose_day_id=first.id,
                                choice=Answer.TAKEN)
    assert result.status == "not_yours"
    assert (await world.day(owner, 1)).state == DoseState.SCHEDULED
    assert await _events(world, first.id) == []


async def test_the_reminder_button_no_longer_answers_a_closed_day_but_the_late_question_does(world):
    patient = await world.enrol()
    await world.course(patient)
    first = await world.day(patient, 1)
    world.clock.set(first.closes_at + timedelta(minutes=1))
    await world.lifecycle()
    assert (await world.day(patient, 1)).state == DoseState.NOT_REPORTED
    closed = await doses.answer(world.rt, account=Account.parse(patient.account_key), dose_day_id=first.id,
                                choice=Answer.TAKEN)
    assert closed.status == "closed"
    assert "dose.answer_refused" in await world.audit_actions(entity="dose_day", entity_id=str(first.id))
    late = await doses.answer(world.rt, account=Account.parse(patient.account_key), dose_day_id=first.id,
                              choice=Answer.TAKEN, source=AnswerSource.LATE_QUESTION)
    assert late.status == "recorded"
    day = await world.day(patient, 1)
    assert (day.state, day.late, day.source) == (DoseState.TAKEN, True, AnswerSource.LATE_QUESTION)


async def test_not_today_is_undone_only_while_the_day_is_open(world):
    patient = await world.enrol()
    await world.course(patient)
    first, second = await world.day(patient, 1), await world.day(patient, 2)
    for day in (first, second):
        world.at_local(patient, day.local_date, time(8, 5))
        await doses.answer(world.rt, account=Account.parse(patient.account_key), dose_day_id=day.id,
                           choice=Answer.MISSED)
    # second is open now; first closed at the end of its day
    undone = await doses.undo_missed(world.rt, account=Account.parse(patient.account_key), dose_day_id=second.id)
    refused = await doses.undo_missed(world.rt, account=Account.parse(patient.account_key), dose_day_id=first.id)
    assert (undone.status, refused.status) == ("reopened", "closed")
    assert (await world.day(patient, 2)).state == DoseState.SCHEDULED
    assert (await world.day(patient, 1)).state == DoseState.MISSED


async def test_a_second_tap_on_undo_is_told_already_and_changes_nothing(world):
    patient = await world.enrol()
    await world.course(patient)
    first = await world.day(patient, 1)
    world.at_local(patient, first.local_date, time(8, 5))
    await doses.answer(world.rt, account=Account.parse(patient.account_key), dose_day_id=first.id, choice=Answer.MISSED)
    undone = await doses.undo_missed(world.rt, account=Account.parse(patient.account_key), dose_day_id=first.id)
    again = await doses.undo_missed(world.rt, account=Account.parse(patient.account_key), dose_day_id=first.id)
    assert (undone.status, again.status) == ("reopened", "already")
    assert [e.kind for e in await _events(world, first.id)].count("undo") == 1
    assert (await world.day(patient, 1)).state == DoseState.SCHEDULED


async def test_snoozes_are_limited_and_each_queues_one_reminder(world):
    patient = await world.enrol()
    await world.course(patient)
    first = await world.day(patient, 1)
    world.at_local(patient, first.local_date, time(8, 5))
    results = [await doses.snooze(world.rt, account=Account.parse(patient.account_key), dose_day_id=first.id)
               for _ in range(3)]
    assert [r.status for r in results] == ["snoozed", "snoozed", "no_more_snoozes"]  # max_snoozes = 2
    assert (await world.day(patient, 1)).snoozes == 2
    queued = [row for row in await world.outbox() if row.kind == "snooze"]
    assert sorted(row.due_at for row in queued) == [world.clock.now() + timedelta(minutes=30)] * 2
