"""Start-up: `adherence-bot run` over 10,000 patients × 14 dose days, from process start to the
scheduler's first completed pass (`event=scheduler_ready`), and the process's peak RSS."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from bot.db.engine import make_engine
from bench.support import ROOT, UTC, SandboxProcess, fresh_database, seed, utc_now, write_config

PATIENTS = 10_000
DAYS = 14


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def startup(database: str) -> dict:
    db = await fresh_database(database)
    engine = make_engine(db.url)
    # Courses starting tomorrow at 08:00 Shanghai: 140,000 scheduled days, nothing due at start-up.
    tomorrow = (utc_now() + timedelta(days=1)).date()
    seed_started = time.monotonic()
    await seed(engine, PATIENTS, days=DAYS, first_due=datetime(tomorrow.year, tomorrow.month, tomorrow.day, 0, 0,
                                                                 tzinfo=UTC))
    seed_seconds = time.monotonic() - seed_started
    await engine.dispose()
    sandbox = SandboxProcess(enforce_limits=False)
    directory = Path(tempfile.mkdtemp(prefix="adherence-bench-config-"))
    config = write_config(directory / "bench.toml", sandbox, db.url)
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": sandbox.token, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "run", "--sandbox", "--config", str(config),
                                                   cwd=str(ROOT), env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    ready = None
    try:
        while ready is None:
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            if not line:
                raise RuntimeError("the bot exited before it was ready")
            if b"event=scheduler_ready" in line:
                ready = time.monotonic() - started
                scheduler_part = float(line.split(b"seconds_since_created=")[1].split()[0])
        await asyncio.sleep(2.0)  # a sweep's worth of steady state for the peak
        rss = _peak_rss_mb(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
        sandbox.stop()
        db.cleanup()
    return {"database": db.label, "patients": PATIENTS, "dose_days": PATIENTS * DAYS, "seed_s": seed_seconds,
            "ready_s": ready, "scheduler_s": scheduler_part, "peak_rss_mb": rss}
