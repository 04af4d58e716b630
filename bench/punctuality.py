"""Punctuality: lateness from a reminder's due instant to its request arriving at the sandbox."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.db.engine import make_engine
from bench.support import (CHAT_BASE, SandboxProcess, fresh_database, monotonic_of, percentile, running_app, seed,
                           settings_for, utc_now)

SAMPLES = 200
SPACING = timedelta(seconds=0.15)  # one reminder at a time: each sample is a lone due row


async def punctuality(database: str = "sqlite", *, samples: int = SAMPLES) -> dict:
    db = await fresh_database(database)
    sandbox = SandboxProcess(enforce_limits=False)
    engine = make_engine(db.url)
    try:
        first = utc_now() + timedelta(seconds=5)
        await seed(engine, samples, days=1, first_due=first, spacing=SPACING)
        async with running_app(settings_for(sandbox, db.url), engine):
            end = first + samples * SPACING + timedelta(seconds=5)
            while utc_now() < end:
                await asyncio.sleep(1.0)
                if len((await sandbox.stats())["sends"]) >= samples:
                    break
        stats = await sandbox.stats()
    finally:
        sandbox.stop()
        await engine.dispose()
        db.cleanup()
    arrived = {}
    for timestamp, chat_id in stats["sends"]:
        arrived.setdefault(chat_id, timestamp)
    lateness = [arrived[CHAT_BASE + i] - monotonic_of(first + i * SPACING) for i in range(samples)
                if CHAT_BASE + i in arrived]
    return {"database": db.label, "samples": len(lateness), "missing": samples - len(lateness),
            "p50_ms": 1000 * percentile(lateness, 0.50), "p99_ms": 1000 * percentile(lateness, 0.99),
            "max_ms": 1000 * max(lateness), "min_ms": 1000 * min(lateness)}
