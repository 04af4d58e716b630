"""Fan-out: 10,000 patients due in the same minute, sent through the sandbox by the real Application."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from bot.db.engine import make_engine
from bench.support import SandboxProcess, fresh_database, monotonic_of, running_app, seed, settings_for, utc_now

PATIENTS = 10_000
LEAD = timedelta(seconds=4)  # the application is up before the minute starts


async def fan_out(database: str, *, limits: bool, window: float = 60.0, patients: int = PATIENTS) -> dict:
    """limits=True: Telegram's limits enforced by the sandbox and configured (30/s, 1/s per chat);
    measured over the first `window` seconds. limits=False: both lifted; all rows, to the end."""
    db = await fresh_database(database)
    sandbox = SandboxProcess(enforce_limits=limits)
    engine = make_engine(db.url)
    try:
        due = utc_now() + LEAD
        await seed(engine, patients, days=1, first_due=due)
        settings = settings_for(sandbox, db.url) if limits else \
            settings_for(sandbox, db.url, global_per_second=1_000_000, per_chat_per_second=1_000)
        cpu_start = time.process_time()
        sandbox_cpu_start = (await sandbox.stats())["cpu_s"]
        async with running_app(settings, engine):
            deadline = time.monotonic() + LEAD.total_seconds() + (window + 5 if limits else 600)
            while time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                stats = await sandbox.stats()
                sends = stats["sends"]
                if limits and sends and sends[-1][0] - sends[0][0] >= window:
                    break
                if len(sends) >= patients:
                    break
        cpu = time.process_time() - cpu_start
        stats = await sandbox.stats()
    finally:
        sandbox.stop()
        await engine.dispose()
        db.cleanup()
    times = sorted(t for t, _ in stats["sends"])
    first_after_due = times[0] - monotonic_of(due)
    if limits:
        start = times[0]
        in_window = [t for t in times if t < start + window]
        rate = len(in_window) / window
        return {"database": db.label, "limits": "enforced (30/s, 1/s per chat)", "window_s": window,
                "first_send_after_due_s": first_after_due, "sent_in_window": len(in_window), "rate_per_s": rate,
                "fraction_of_30": rate / 30,
                "too_many_requests": stats["too_many_requests"]}
    chats = {c for _, c in stats["sends"]}
    elapsed = times[-1] - times[0]
    return {"database": db.label, "limits": "lifted", "first_send_after_due_s": first_after_due, "sent": len(times),
            "distinct_chats": len(chats),
            "elapsed_s": elapsed, "rate_per_s": (len(times) - 1) / elapsed,
            "bot_cpu_ms_per_message": 1000 * cpu / len(times),
            "sandbox_cpu_ms_per_message": 1000 * (stats["cpu_s"] - sandbox_cpu_start) / len(times),
            "too_many_requests": stats["too_many_requests"]}
