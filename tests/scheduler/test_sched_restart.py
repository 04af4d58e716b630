"""Restarts, downtime and DST: every due message goes out once, at the right instant, or is skipped with a reason.
The rules for rows after downtime (follow-ups keep their distance, a day closed while down) are
proved at the service tier (tests/services/test_service_delivery.py)."""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, timezone

from sqlmodel import select

from bot.db.engine import session_factory
from bot.db.models import DoseDay, Outbox, Patient
from bot.sandbox import BotApiSandbox
from bot.services import courses
from bot.services.clock import FakeClock
from bot.services.runtime import Runtime
from scheduler.lifecycle import advance
from tests.e2e.harness import make_settings
from tests.scheduler.sched_support import (CHAT_BASE, app_on, outbox_rows, outbox_states, reminders_per_chat,
                                           seed_due, wait_until)

UTC = timezone.utc
T0 = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai


async def test_restart_sends_rows_due_in_the_past_exactly_once(engine, database_url):
    queued = await seed_due(engine, 30, due_at=T0)
    unqueued = await seed_due(engine, 20, due_at=T0 + timedelta(minutes=30), start=100)
    chats = [c for _, c, _ in queued + unqueued]
    clock = FakeClock(T0 - timedelta(hours=1))
    async with BotApiSandbox() as sandbox:
        async with app_on(sandbox, engine, database_url, clock=clock) as h:
            await h.tick()
            assert reminders_per_chat(sandbox, chats) == {}
        # While the bot is down, the first group's reminders are queued (pending, due in the past).
        rt = Runtime(settings=make_settings(sandbox, database_url), engine=engine, clock=clock)
        clock.set(T0 + timedelta(minutes=5))
        async with rt.session() as session:
            await advance(session, settings=rt.settings, now=rt.now())
            await session.commit()
        assert (await outbox_states(engine, Outbox.kind == "reminder")) == {"pending": 30}
        clock.set(T0 + timedelta(hours=1))
        async with app_on(sandbox, engine, database_url, clock=clock):  # start-up alone sends them
            await wait_until(lambda: len(reminders_per_chat(sandbox, chats)) == 50, timeout=10, what="50 chats")
            await wait_until(lambda: outbox_states(engine, Outbox.kind == "reminder"), timeout=5)
        async with app_on(sandbox, engine, database_url, clock=clock) as h:  # and a second restart adds nothing
            await h.tick()
        assert set(reminders_per_chat(sandbox, chats).values()) == {1}
        assert (await outbox_states(engine, Outbox.kind == "reminder")) == {"sent": 50}
        assert all(r.resends == 0 and r.attempts == 1 for r in await outbox_rows(engine, Outbox.kind == "reminder"))


async def test_stopping_mid_fan_out_hands_rows_back_and_the_restart_sends_each_once(engine, database_url):
    rows = await seed_due(engine, 80, due_at=T0)
    chats = [c for _, c, _ in rows]
    clock = FakeClock(T0)
    async with BotApiSandbox(enforce_limits=True) as sandbox:
        limits = {"delivery": {"global_per_second": 20, "per_chat_per_second": 1}}
        async with app_on(sandbox, engine, database_url, clock=clock, **limits) as h:
            await wait_until(lambda: len(sandbox.sent) >= 15, timeout=10, what="fan-out under way")
            started = time.monotonic()
            await h.stop()  # PTB stops, then its post_stop stops the scheduler: the fan-out hands rows back
            stop_seconds = time.monotonic() - started
        states = await outbox_states(engine, Outbox.kind == "reminder")
        assert stop_seconds < 3, stop_seconds
        assert states["claimed"] == states["sending"] == 0, states
        assert 15 <= states["sent"] < 80 and states["pending"] == 80 - states["sent"], states
        async with app_on(sandbox, engine, database_url, clock=clock, **limits):
            await wait_until(lambda: len(reminders_per_chat(sandbox, chats)) == 80, timeout=15, what="all chats")
            await wait_until(lambda: _all_sent(engine), timeout=5, what="all rows recorded")
        assert set(reminders_per_chat(sandbox, chats).values()) == {1}
        assert sandbox.too_many_requests_count == 0
        assert all(r.resends == 0 for r in await outbox_rows(engine, Outbox.kind == "reminder"))


async def _all_sent(engine) -> bool:
    return (await outbox_states(engine, Outbox.kind == "reminder")) == {"sent": 80}


async def _course_in(engine, rt: Runtime, *, tz: str, reminder_time: str, chemo_end: date, user_id: int) -> Patient:
    async with session_factory(engine)() as session:
        patient = Patient(subject_id=f"NJ-D{user_id}", site_id="NJ", channel="telegram", account=str(user_id), address=str(user_id),
                          locale="en", timezone=tz, reminder_time=reminder_time, status="active",
                          created_at=rt.now(), enrolled_at=rt.now())
        session.add(patient)
        await session.commit()
    await courses.add_course(rt, subject_id=patient.subject_id, chemo_end=chemo_end, actor_kind="operator",
                           actor_id="test")
    return patient


async def _run_until(h, end: datetime) -> int:
    """Let the scheduler's own next-due instants drive the fake clock."""
    ticks = 0
    while (due := await h.scheduler.next_due()) is not None and due <= end:
        await h.tick(due)
        ticks += 1
    return ticks


async def test_dst_spring_forward_and_fall_back_reminders_are_sent_once(engine, database_url):
    clock = FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    async with BotApiSandbox() as sandbox:
        async with app_on(sandbox, engine, database_url, clock=clock) as h:
            # 02:30 does not exist in New York on 2026-03-08: due at 03:00 EDT = 07:00 UTC.
            spring = await _course_in(engine, h.rt, tz="America/New_York", reminder_time="02:30",
                                      chemo_end=date(2026, 3, 6), user_id=CHAT_BASE + 901)
            # 01:30 happens twice on 2026-11-01: due at the first one, 01:30 EDT = 05:30 UTC.
            fall = await _course_in(engine, h.rt, tz="America/New_York", reminder_time="01:30",
                                    chemo_end=date(2026, 10, 30), user_id=CHAT_BASE + 902)
            async with session_factory(engine)() as session:
                gap_day = (await session.exec(select(DoseDay).where(DoseDay.patient_id == spring.id,
                                                                    DoseDay.local_date == date(2026, 3, 8)))).one()
                fold_day = (await session.exec(select(DoseDay).where(DoseDay.patient_id == fall.id,
                                                                     DoseDay.local_date == date(2026, 11, 1)))).one()
            assert gap_day.due_at == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
            assert fold_day.due_at == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
            await _run_until(h, datetime(2026, 3, 8, 6, 59, 59, tzinfo=UTC))
            assert await h.scheduler.next_due() == gap_day.due_at  # the wake-up is the first valid instant
            await _run_until(h, datetime(2026, 3, 22, tzinfo=UTC))
            await _run_until(h, datetime(2026, 11, 1, 6, 29, tzinfo=UTC))
            await h.tick(datetime(2026, 11, 1, 6, 30, tzinfo=UTC))  # 01:30 EST, the second 01:30
            await _run_until(h, datetime(2026, 11, 16, tzinfo=UTC))
            await wait_until(lambda: _nothing_in_flight(engine), timeout=5, what="outbox settled")
        for patient, day in ((spring, gap_day), (fall, fold_day)):
            reminders = await outbox_rows(engine, Outbox.kind == "reminder", Outbox.patient_id == patient.id)
            assert len(reminders) == 14 and {r.state for r in reminders} == {"sent"}
            bad = [(r.due_at, r.finished_at) for r in reminders if r.finished_at != r.due_at]
            assert not bad  # each at its instant, not later
            [that_day] = [r for r in reminders if r.dose_day_id == day.id]
            assert that_day.finished_at == day.due_at
            # each reminder was later closed with its day (edited in place): its first version is the reminder
            texts = [m for m in sandbox.messages(int(patient.address))
                     if "Time for your" in ((m.history[0][0] if m.history else m.text) or "")]
            assert len(texts) == 14


async def _nothing_in_flight(engine) -> bool:
    states = await outbox_states(engine)
    return states["claimed"] == states["sending"] == 0


async def test_a_slow_start_still_runs_the_start_up_pass(engine, database_url):
    """APScheduler drops a job run more than 1 s late unless told otherwise: the start-up pass must not be lost."""
    import asyncio

    from bot.app import build_application, on_startup

    rows = await seed_due(engine, 3, due_at=T0)
    async with BotApiSandbox() as sandbox:
        app = build_application(make_settings(sandbox, database_url), engine=engine, clock=FakeClock(T0))
        await app.initialize()
        await on_startup(app)
        await asyncio.sleep(1.5)  # e.g. a slow disk, a busy host
        await app.start()
        try:
            await wait_until(lambda: len(reminders_per_chat(sandbox, [c for _, c, _ in rows])) == 3, timeout=5,
                             what="start-up pass")
        finally:
            await app.stop()
            await app.shutdown()
