"""The outbox delivery policy at the service tier: the scheduler's lifecycle and courier against a
recording fake channel (no PTB, no sandbox). What Telegram's answers map to is proved by the
adapter's own tests; the journeys through the sandbox stay in tests/scheduler/test_sched_delivery.py."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlmodel import select

from bot.channels.port import NotDelivered, Recipient, Refused, RetryAfter, Sent, Unknown
from bot.db.models import Alert, DoseDay, Outbox, Patient
from bot.services.alerts import raise_alert
from tests.e2e.harness import ADMIN_NJ, COORDINATOR_NJ
from tests.scheduler.sched_support import seed_due
from tests.services.fake_channel import RecordingChannel

UTC = timezone.utc
T0 = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai


async def _row(world, kind: str, chat_id: int) -> Outbox:
    [row] = await world.outbox(Outbox.kind == kind, Outbox.address == str(chat_id))
    return row


def _kinds(deliveries) -> list[str]:
    return [type(d.result).__name__ for d in deliveries]


async def test_server_errors_are_retried_with_backoff_and_delivered_once(world, clock, engine):
    clock.set(T0)
    rows = await seed_due(engine, 5, due_at=T0)
    _, target, _ = rows[2]
    to = Recipient.telegram(target)
    channel = RecordingChannel()
    channel.answer(NotDelivered("Internal Server Error"), to=to, times=2)
    await world.send(channel)
    row = await _row(world, "reminder", target)
    assert (row.attempts, row.state) == (1, "pending")
    assert not channel.received(to)
    assert await world.next_due() == T0 + timedelta(seconds=2)
    clock.set(T0 + timedelta(seconds=2))
    await world.send(channel)
    row = await _row(world, "reminder", target)
    assert (row.attempts, row.state) == (2, "pending")
    assert await world.next_due() == T0 + timedelta(seconds=6)  # backing off: 2 s, then 4 s
    clock.set(T0 + timedelta(seconds=5))
    await world.send(channel)
    assert not channel.received(to)
    clock.set(T0 + timedelta(seconds=6))
    await world.send(channel)
    assert len(channel.received(to)) == 1
    clock.set(T0 + timedelta(seconds=60))
    await world.send(channel)
    row = await _row(world, "reminder", target)
    assert row.state == "sent" and row.attempts == 3 and row.resends == 0
    assert len(channel.received(to)) == 1
    assert _kinds(channel.to(to)) == ["NotDelivered", "NotDelivered", "Sent"]


async def test_a_coordinator_blocking_the_bot_does_not_make_the_patient_unreachable(world, clock, engine):
    clock.set(T0)
    [(patient_id, _, _)] = await seed_due(engine, 1, due_at=T0 + timedelta(days=1))
    channel = RecordingChannel()
    channel.answer(Refused("Forbidden: bot was blocked by the user"), to=Recipient.telegram(COORDINATOR_NJ), times=None)
    async with world.rt.session() as session:
        patient = await session.get(Patient, patient_id)
        await raise_alert(session, settings=world.rt.settings, now=world.rt.now(), site_id="NJ",
                          kind="same_day_symptom", patient=patient, details={"symptoms": ["urine_blood"]})
        await session.commit()
    await world.send(channel)
    assert len(channel.received(Recipient.telegram(ADMIN_NJ))) == 1
    async with world.rt.session() as session:
        assert not (await session.get(Patient, patient_id)).unreachable
        assert not (await session.exec(select(Alert).where(Alert.kind == "unreachable"))).all()
    assert (await _row(world, "alert", COORDINATOR_NJ)).state == "failed"


async def test_unknown_is_never_resent_and_retry_after_waits_without_counting_an_attempt(world, clock, engine):
    clock.set(T0)
    rows = await seed_due(engine, 3, due_at=T0)
    (_, slow, _), (_, flooded, _) = rows[0], rows[1]
    channel = RecordingChannel()
    channel.answer(Unknown("read timeout"), to=Recipient.telegram(slow))
    channel.answer(RetryAfter(7), to=Recipient.telegram(flooded))
    await world.send(channel)
    assert (await _row(world, "reminder", slow)).state == "unknown"
    row = await _row(world, "reminder", flooded)
    assert (row.state, row.attempts, row.due_at) == ("pending", 0, T0 + timedelta(seconds=7))
    clock.set(T0 + timedelta(minutes=1))
    await world.send(channel)
    assert _kinds(channel.to(Recipient.telegram(slow))) == ["Unknown"]  # never resent blindly
    assert _kinds(channel.to(Recipient.telegram(flooded))) == ["RetryAfter", "Sent"]
    assert isinstance(channel.to(Recipient.telegram(rows[2][1]))[0].result, Sent)


async def test_after_downtime_useful_rows_go_at_once_and_follow_ups_keep_their_distance(world, clock, engine):
    [(_, chat, dose_id)] = await seed_due(engine, 1, due_at=T0, closes_at=T0 + timedelta(hours=16))
    to = Recipient.telegram(chat)
    channel = RecordingChannel()
    clock.set(T0 - timedelta(hours=1))
    await world.send(channel)
    clock.set(T0 + timedelta(hours=3))  # down across the reminder and its follow-up instant
    await world.send(channel)
    assert len(channel.messages(to)) == 1
    await world.send(channel)
    assert len(channel.messages(to)) == 1  # the follow-up does not chase the late reminder
    assert await world.next_due() == T0 + timedelta(hours=5)
    clock.set(T0 + timedelta(hours=5) - timedelta(seconds=1))
    await world.send(channel)
    assert len(channel.messages(to)) == 1
    clock.set(T0 + timedelta(hours=5))
    await world.send(channel)
    assert len(channel.messages(to)) == 2
    [followup] = await world.outbox(Outbox.kind == "followup", Outbox.dose_day_id == dose_id)
    assert followup.state == "sent" and followup.finished_at == T0 + timedelta(hours=5)


async def test_day_closed_while_down_is_closed_at_the_next_pass_and_stale_follow_up_skipped(world, clock, engine):
    [(_, chat, dose_id)] = await seed_due(engine, 1, due_at=T0, closes_at=T0 + timedelta(hours=16))
    to = Recipient.telegram(chat)
    channel = RecordingChannel()
    clock.set(T0)
    await world.send(channel)
    assert len(channel.messages(to)) == 1
    assert {r.state for r in await world.outbox(Outbox.kind == "followup")} == {"pending"}
    clock.set(T0 + timedelta(hours=20))  # the day closed at T0+16h while we were down
    await world.send(channel)
    async with world.rt.session() as session:
        assert (await session.get(DoseDay, dose_id)).state == "not_reported"
    [followup] = await world.outbox(Outbox.kind == "followup")
    assert followup.state == "skipped" and followup.last_error == "day closed before it could be sent"
    [question] = await world.outbox(Outbox.kind == "late_question")
    assert question.state == "pending" and question.due_at == T0 + timedelta(hours=24)  # next morning 08:00
    assert len(channel.messages(to)) == 1


async def test_a_second_pass_in_the_same_instant_claims_only_after_something_new_was_queued(world, clock, engine):
    """A simulated clock runs many passes in one instant; one that follows a complete drain, with
    nothing queued since, claims nothing. Whatever queues a row wakes the courier, and then the
    next pass claims and sends it, in that same instant."""
    from sqlalchemy import event

    from scheduler.service import Scheduler

    clock.set(T0)
    [(patient_id, _, _), *_] = await seed_due(engine, 3, due_at=T0)
    claims = []

    def count_claims(_conn, _cursor, statement, *_args) -> None:
        if statement.startswith("UPDATE outbox SET state=") and "claimed_by=" in statement.split("WHERE")[0]:
            claims.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count_claims)
    channel = RecordingChannel()
    scheduler = Scheduler(world.rt, {channel.name: channel}, worker_id="same-instant")
    await scheduler.start(None)
    try:
        await scheduler.tick()  # the lifecycle queues the three reminders (a step that queued: it claims)
        assert len(channel.deliveries) == 3 and claims
        claims.clear()
        await scheduler.tick()  # the same instant, nothing new: no claim in either lane
        assert claims == [] and len(channel.deliveries) == 3
        async with world.rt.session() as session:  # a handler raises an alert and wakes the courier
            patient = await session.get(Patient, patient_id)
            await raise_alert(session, settings=world.rt.settings, now=T0, site_id="NJ", kind="emergency_symptom",
                              patient=patient, details={"symptoms": ["black_stool"]})
            await session.commit()
        scheduler.courier.poke()
        await scheduler.tick()
        assert claims and {d.recipient for d in channel.deliveries[3:]} >= {Recipient.telegram(COORDINATOR_NJ)}
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count_claims)
        await scheduler.stop()
