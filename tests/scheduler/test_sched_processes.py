"""`adherence-bot run` as real processes: SIGKILL mid-fan-out, restarts, and two schedulers at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from bot.db.engine import session_factory
from bot.db.models import Outbox, RuntimeState
from bot.sandbox import BotApiSandbox
from scheduler.courier import IN_FLIGHT
from scheduler.ownership import OWNER_KEY
from tests.scheduler.sched_support import (BotProcess, outbox_rows, outbox_states, reminders_per_chat, seed_due,
                                           wait_until, write_config)

UTC = timezone.utc
CRASH_PATIENTS = 240


def _now() -> datetime:
    return datetime.now(UTC)


async def _settled(engine, count: int) -> bool:
    states = await outbox_states(engine, Outbox.kind == "reminder")
    return sum(states.values()) == count and not (states["pending"] or states["claimed"] or states["sending"])


async def _states_are(engine, expected: dict) -> bool:
    return dict(await outbox_states(engine, Outbox.kind == "reminder")) == expected


@pytest.mark.parametrize("moment", ["before_any_send", "mid_fan_out", "after_last_send_before_recorded"])
async def test_sigkill_during_fan_out_then_restart_loses_nothing(engine, database_url, tmp_path, moment,
                                                                 record_property):
    lead = timedelta(seconds=6) if moment == "before_any_send" else timedelta(seconds=-1)
    due_at = _now() + lead
    rows = await seed_due(engine, CRASH_PATIENTS, due_at=due_at)
    chats = [c for _, c, _ in rows]
    async with BotApiSandbox() as sandbox:
        config = write_config(tmp_path / "bot.toml", sandbox, database_url, global_per_second=60,
                              send_timeout_seconds=30)
        if moment == "after_last_send_before_recorded":  # Telegram delivers it; its answer never comes back
            sandbox.inject_fault(kind="timeout_after_accept", chat_id=chats[-1], delay=20)
        first = await BotProcess(config, sandbox).start()
        try:
            if moment == "before_any_send":
                await first.wait_ready()  # rebuilt from the database, waiting for the due instant
                assert _now() < due_at - timedelta(seconds=0.5), "started too slowly for this kill point"
            elif moment == "mid_fan_out":
                await wait_until(lambda: len(reminders_per_chat(sandbox, chats)) >= CRASH_PATIENTS // 2,
                                 timeout=30, interval=0.01, what="half the fan-out")
            else:
                await wait_until(lambda: sandbox.messages(chats[-1]), timeout=30, interval=0.01, what="last send")
                expected = {"sent": CRASH_PATIENTS - 1, "sending": 1}  # only the last one is in doubt
                await wait_until(lambda: _states_are(engine, expected), timeout=10, what="others recorded")
        finally:
            await first.kill()
        delivered_before = len(reminders_per_chat(sandbox, chats))
        at_kill = await outbox_states(engine, Outbox.kind == "reminder")
        if moment == "before_any_send":
            assert delivered_before == 0 and not any(c.method == "sendMessage" for c in sandbox.calls)
        sandbox.clear_faults()
        second = await BotProcess(config, sandbox).start()  # on SQLite it takes over from the dead pid
        try:
            await wait_until(lambda: _settled(engine, CRASH_PATIENTS), timeout=40, interval=0.1,
                             what="all reminders settled after restart")
        finally:
            assert await second.terminate() == 0, second.output[-3000:]
    per_chat = reminders_per_chat(sandbox, chats)
    reminders = {int(r.address): r for r in await outbox_rows(engine, Outbox.kind == "reminder")}
    lost = [c for c in chats if per_chat[c] == 0]
    duplicated = [c for c in chats if per_chat[c] > 1]
    resent = {c for c, r in reminders.items() if r.resends > 0}
    print(f"{moment}: delivered before kill {delivered_before}, rows at kill {dict(at_kill)}, "
          f"re-queued in flight {len(resent)}, duplicates {len(duplicated)}")
    record_property("duplicates", len(duplicated))
    assert not lost, f"lost reminders for {len(lost)} chats"
    assert set(duplicated) <= resent, "a duplicate that the database did not count as a possible resend"
    assert {r.state for r in reminders.values()} == {"sent"}
    if moment != "after_last_send_before_recorded":
        # At most the requests in flight at the instant of the kill (the courier keeps up to
        # IN_FLIGHT["normal"] of them); each is counted as a possible resend (above) and says so (below).
        assert len(duplicated) <= IN_FLIGHT["normal"]
    else:
        assert duplicated == [chats[-1]]  # the one ambiguous row: accepted by Telegram, never recorded
    marker = "You may have received this already. Take only one dose today."
    for chat in chats:  # a re-sent reminder says so (and only a re-sent one)
        marked = [m for m in sandbox.messages(chat) if marker in (m.text or "")]
        assert len(marked) == (1 if chat in resent else 0), chat
        if chat in duplicated:
            assert sandbox.messages(chat)[-1].text.startswith("⚠ " + marker)


@pytest.mark.postgres_only  # several schedulers need PostgreSQL (SQLite: see the next test)
async def test_two_processes_on_postgresql_send_each_reminder_once(engine, database_url, tmp_path):
    rows = await seed_due(engine, 1000, due_at=_now() + timedelta(seconds=4))
    chats = [c for _, c, _ in rows]
    async with BotApiSandbox() as sandbox:
        config = write_config(tmp_path / "bot.toml", sandbox, database_url, global_per_second=400)
        processes = [BotProcess(config, sandbox), BotProcess(config, sandbox)]
        await asyncio.gather(*(p.start() for p in processes))
        try:
            await asyncio.gather(*(p.wait_ready() for p in processes))
            await wait_until(lambda: _settled(engine, 1000), timeout=60, interval=0.1, what="1000 settled")
        finally:
            codes = [await p.terminate() for p in processes]
    reminders = await outbox_rows(engine, Outbox.kind == "reminder")
    workers = Counter(r.claimed_by for r in reminders)
    print(f"two processes: rows per worker {dict(workers)}")
    assert codes == [0, 0]
    assert Counter(reminders_per_chat(sandbox, chats).values()) == {1: 1000}
    assert {r.state for r in reminders} == {"sent"} and all(r.resends == 0 for r in reminders)
    assert len(workers) == 2, workers  # both really sent


@pytest.mark.sqlite_only  # the single-scheduler guard is for SQLite
async def test_a_second_scheduler_on_the_same_sqlite_file_refuses_to_start(engine, database_url, tmp_path):
    rows = await seed_due(engine, 5, due_at=_now() + timedelta(seconds=2))
    async with BotApiSandbox() as sandbox:
        config = write_config(tmp_path / "bot.toml", sandbox, database_url)
        first = await BotProcess(config, sandbox).start()
        try:
            await first.wait_ready()
            second = await BotProcess(config, sandbox).start()
            code = await asyncio.wait_for(second.process.wait(), 30)
            await second._reader
            assert code == 1  # the command line's one-line refusal, not a crash
            assert "another scheduler" in second.output and str(first.pid) in second.output
            assert "Traceback" not in second.output, second.output[-3000:]
            await wait_until(lambda: len(reminders_per_chat(sandbox, [c for _, c, _ in rows])) == 5, timeout=15,
                             what="the first one still sends")
        finally:
            assert await first.terminate() == 0


async def test_concurrent_claims_never_hand_out_a_row_twice(engine, database_url):
    """The claim statement itself, hammered by eight workers at once (SKIP LOCKED on PostgreSQL)."""
    from sqlalchemy import insert

    from bot.services.clock import SystemClock
    from bot.services.runtime import Runtime
    from scheduler.courier import Courier
    from tests.e2e.harness import make_settings

    async with BotApiSandbox() as sandbox:
        rt = Runtime(settings=make_settings(sandbox, database_url), engine=engine, clock=SystemClock())
    due = _now() - timedelta(seconds=1)
    async with rt.session() as session:
        await session.exec(insert(Outbox), params=[dict(
            kind="course_plan", lane="normal", channel="telegram", address=str(1 + i), due_at=due, state="pending", attempts=0, resends=0,
            payload={}, created_at=due) for i in range(1500)])
        await session.commit()
    claimed: list[int] = []

    async def worker(courier: Courier) -> None:
        while rows := await courier.claim(lane="normal", limit=40):
            claimed.extend(r.id for r in rows)

    await asyncio.gather(*(worker(Courier(rt, {}, worker_id=f"host:{i}")) for i in range(8)))
    assert len(claimed) == len(set(claimed)) == 1500


@pytest.mark.sqlite_only  # ownership of the file is SQLite's single-scheduler guard
async def test_a_clean_stop_releases_the_sqlite_ownership(engine, database_url, tmp_path):
    async with BotApiSandbox() as sandbox:
        config = write_config(tmp_path / "bot.toml", sandbox, database_url)
        first = await BotProcess(config, sandbox).start()
        await first.wait_ready()
        async with session_factory(engine)() as session:
            assert (await session.get(RuntimeState, OWNER_KEY)).value.endswith(f":{first.pid}")
        assert await first.terminate() == 0
        async with session_factory(engine)() as session:
            assert await session.get(RuntimeState, OWNER_KEY, populate_existing=True) is None  # released
        second = await BotProcess(config, sandbox).start()  # starts at once, nothing to take over
        try:
            await second.wait_ready()
            assert "took_over" not in second.output and "takeover" not in second.output
        finally:
            assert await second.terminate() == 0
