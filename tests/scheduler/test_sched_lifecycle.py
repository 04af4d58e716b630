"""A whole 14-day course, driven only by the scheduler's own next-due instants on an injected clock."""

from __future__ import annotations

import time
from collections import Counter
from datetime import date, datetime, timezone

from bot.db.engine import session_factory
from bot.db.models import DoseDay, Patient
from bot.render import callbacks as cb
from bot.sandbox import BotApiSandbox
from bot.services import courses
from bot.services.clock import FakeClock
from tests.scheduler.sched_support import app_on, outbox_rows, outbox_states

UTC = timezone.utc
START = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
END = datetime(2026, 12, 18, 0, 0, tzinfo=UTC)  # two days after the last day's late window
# user id → (locale, behaviour)
PATIENTS = {7301: ("en", "taken"), 7302: ("zh_Hans", "silent"), 7303: ("en", "snooze"), 7304: ("zh_Hans", "mixed")}


async def _enrolled(engine, rt) -> None:
    async with session_factory(engine)() as session:
        for user_id, (locale, _) in PATIENTS.items():
            session.add(Patient(subject_id=f"NJ-L{user_id}", site_id="NJ", channel="telegram", account=str(user_id), address=str(user_id),
                                locale=locale, reminder_time="08:00", status="active", created_at=rt.now(),
                                enrolled_at=rt.now()))
        await session.commit()
    for user_id in PATIENTS:
        await courses.add_course(rt, subject_id=f"NJ-L{user_id}", chemo_end=date(2026, 12, 1), actor_kind="operator",
                               actor_id="test")


async def _answer(sandbox, user_id: int, message, action: str) -> None:
    answers = len(sandbox.callback_answers)
    sandbox.user(user_id).press(message, next(data for _, data in message.buttons if data.endswith(f":{action}")))
    await sandbox.wait_for(lambda: len(sandbox.callback_answers) > answers)


async def _act(sandbox, user_id: int, behaviour: str, message, day_of: dict[int, int]) -> None:
    """What each patient does with a message that has dose buttons."""
    data = [d for _, d in message.buttons if d and d.startswith("d:")]
    if not data or behaviour == "silent":
        return
    dose_id = int(data[0].split(":")[1])
    day = day_of[dose_id]
    if behaviour == "taken":
        await _answer(sandbox, user_id, message, cb.TAKEN)
    elif behaviour == "snooze":  # "remind me later" on the reminder, "taken" on the snoozed one
        await _answer(sandbox, user_id, message, cb.LATER if "Time for your" in (message.text or "") else cb.TAKEN)
    elif behaviour == "mixed":
        await _answer(sandbox, user_id, message, cb.MISSED if day % 3 == 0 else cb.TAKEN)


async def test_a_whole_course_runs_in_seconds_from_the_clock_alone(engine, database_url):
    clock = FakeClock(START)
    started = time.monotonic()
    async with BotApiSandbox() as sandbox:
        async with app_on(sandbox, engine, database_url, clock=clock) as h:
            await _enrolled(engine, h.rt)
            await h.tick()  # the course plans, due now
            async with session_factory(engine)() as session:
                day_of = {d.id: d.day for d in (await session.exec(DoseDay.__table__.select())).all()}
            seen = Counter()
            ticks = 0
            while (due := await h.scheduler.next_due()) is not None and due <= END:
                await h.tick(due)
                ticks += 1
                for user_id, (_, behaviour) in PATIENTS.items():
                    messages = sandbox.messages(user_id)
                    for message in messages[seen[user_id]:]:
                        await _act(sandbox, user_id, behaviour, message, day_of)
                    seen[user_id] = len(messages)
                await h.tick()  # what the answers queued (edits of the day's other reminders) goes out now
            await h.tick(END)
        elapsed = time.monotonic() - started
    states = await outbox_states(engine)
    assert set(states) <= {"sent", "skipped"}, states  # nothing pending, in flight, unknown or failed
    rows = await outbox_rows(engine)
    late = [(r.kind, int(r.address), r.due_at, r.finished_at) for r in rows
            if r.state == "sent" and r.finished_at != r.due_at]
    assert not late, late  # on the fake clock, everything goes out at its instant
    by_patient = {user_id: [r for r in rows if r.address == str(user_id) and r.state == "sent"] for user_id in PATIENTS}
    kinds = {user_id: Counter(r.kind for r in sent) for user_id, sent in by_patient.items()}
    assert kinds[7301] == {"course_plan": 1, "reminder": 14, "course_end": 1}
    # a silent patient's reminder and follow-up are closed (edited, buttons removed) when each day closes
    assert kinds[7302] == {"course_plan": 1, "reminder": 14, "followup": 14, "late_question": 14, "course_end": 1,
                           "reminder_close": 28}
    # answered on the snoozed reminder: the first one is closed too, so it no longer asks
    assert kinds[7303] == {"course_plan": 1, "reminder": 14, "snooze": 14, "course_end": 1, "reminder_close": 14}
    assert kinds[7304] == {"course_plan": 1, "reminder": 14, "course_end": 1}
    async with session_factory(engine)() as session:
        doses = (await session.exec(DoseDay.__table__.select())).all()
        patients = {p.id: int(p.account) for p in (await session.exec(Patient.__table__.select())).all()}
    final = {user_id: Counter(d.state for d in doses if patients[d.patient_id] == user_id) for user_id in PATIENTS}
    assert final[7301] == {"taken": 14} and final[7303] == {"taken": 14}
    assert final[7302] == {"not_reported": 14}
    assert final[7304] == {"taken": 10, "missed": 4}
    for user_id in PATIENTS:  # what the patient saw matches what was recorded as sent (edits are not new messages)
        assert len(sandbox.messages(user_id)) == len([r for r in by_patient[user_id] if r.kind != "reminder_close"])
    alerts = [r for r in rows if r.kind == "alert"]
    assert alerts and all(r.state == "sent" for r in alerts)  # coordinators heard about the silent days
    print(f"14-day course, 4 patients: {ticks} wake-ups, {len(rows)} outbox rows, {elapsed:.1f} s")
    assert elapsed < 60
