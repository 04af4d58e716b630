"""Emergency-alert latency behind a reminder fan-out at Telegram's limits.

10,000 reminders are due together (30/s overall, 1/s per chat, enforced by the sandbox and
configured in the bot: the fan-out takes about 5.6 minutes). While it runs, 50 patients report
an emergency, one every 2 s. For each, the latency is from the moment the report is handed to
`bot.services.symptoms.report` (what the patient's Send tap calls) to the moment the emergency
alert for that subject has arrived at the sandbox for every coordinator of the site.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from bot.channels.port import Account
from bot.db.engine import make_engine
from bench.support import CHAT_BASE, SandboxProcess, fresh_database, percentile, running_app, seed, settings_for, utc_now

PATIENTS = 10_000
EMERGENCIES = 50
SPACING_S = 2.0
LEAD = timedelta(seconds=4)


async def emergency_latency(database: str, *, patients: int = PATIENTS, emergencies: int = EMERGENCIES) -> dict:
    from bot.services import symptoms

    db = await fresh_database(database)
    sandbox = SandboxProcess(enforce_limits=True)
    engine = make_engine(db.url)
    try:
        due = utc_now() + LEAD
        await seed(engine, patients, days=1, first_due=due)
        settings = settings_for(sandbox, db.url)
        coordinators = [c.telegram_id for c in settings.site("NJ").coordinators]
        reported: dict[str, float] = {}
        async with running_app(settings, engine) as application:
            rt = application.bot_data["runtime"]
            await asyncio.sleep(max(0.0, (due - utc_now()).total_seconds()) + 2)  # the fan-out is under way
            for n in range(emergencies):
                # Patients spread over the whole fan-out's order (their own reminders queued or not).
                index = (n * (patients // emergencies) + 7) % patients
                subject = f"NJ-B{index:06d}"
                reported[subject] = time.monotonic()
                await symptoms.report(rt, account=Account.telegram(CHAT_BASE + index), codes=["black_stool"],
                                      advice_sent_by_caller=False)
                await asyncio.sleep(SPACING_S)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                stats = await sandbox.stats()
                arrived = _arrivals(stats, coordinators, reported)
                if len(arrived) == len(reported):
                    break
                await asyncio.sleep(0.5)
            reminders_sent = sum(1 for _, chat in stats["sends"] if chat < 100_000_000)
    finally:
        sandbox.stop()
        await engine.dispose()
        db.cleanup()
    latencies = [arrived[s] - reported[s] for s in arrived]
    return {"database": db.label, "emergencies": len(reported), "delivered": len(latencies),
            "reminders_sent_meanwhile": reminders_sent,
            "p50_ms": 1000 * percentile(latencies, 0.5), "p99_ms": 1000 * percentile(latencies, 0.99),
            "max_ms": 1000 * max(latencies, default=float("nan")),
            "too_many_requests": stats["too_many_requests"]}


def _arrivals(stats: dict, coordinators: list[int], reported: dict[str, float]) -> dict[str, float]:
    """subject → when its alert had reached every coordinator (the later of the arrivals)."""
    first: dict[tuple[str, int], float] = {}
    for at, chat, text in stats["staff_sends"]:
        if chat not in coordinators:
            continue
        for subject in reported:
            if subject in text:
                first.setdefault((subject, chat), at)
    return {s: max(first[(s, c)] for c in coordinators) for s in reported
            if all((s, c) in first for c in coordinators)}
