"""Where the lifted-limits fan-out spends its time: the two halves measured apart.

- client: the running Application's own Bot (PTB + httpx + our flood gate) sending 3,000
  messages 8 at a time, with no database at all: the ceiling any courier can reach here;
- courier: the real scheduler and database work with the HTTP request replaced by a 3 ms
  stub: what claiming, rendering, marking and recording cost per message.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from bot.db.engine import make_engine
from bench.support import CHAT_BASE, SandboxProcess, fresh_database, running_app, seed, settings_for, utc_now
from bot.channels.telegram.channel import TelegramChannel
from scheduler.courier import counts_by_state

MESSAGES = 3_000
TEXT = "💊 Day 1 of 14\nTime for your study tablets, 7.5 mg.\nEmpty stomach: nothing for 2 h before and 1 h after."


async def client_only(database: str = "sqlite") -> dict:
    db = await fresh_database(database)
    sandbox = SandboxProcess(enforce_limits=False)
    engine = make_engine(db.url)
    try:
        settings = settings_for(sandbox, db.url, global_per_second=1_000_000, per_chat_per_second=1_000)
        async with running_app(settings, engine) as application:
            slots = asyncio.Semaphore(8)

            async def one(i: int) -> None:
                async with slots:
                    await application.bot.send_message(CHAT_BASE + i, TEXT)

            cpu, started = time.process_time(), time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(MESSAGES)))
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        sandbox.stop()
        await engine.dispose()
        db.cleanup()
    return {"part": "Bot API client only (PTB + httpx + gate)", "rate_per_s": MESSAGES / elapsed,
            "cpu_ms_per_message": 1000 * cpu / MESSAGES}


class _Sent:
    message_id = 1


async def courier_only(database: str = "sqlite") -> dict:
    db = await fresh_database(database)
    sandbox = SandboxProcess(enforce_limits=False)
    engine = make_engine(db.url)
    try:
        due = utc_now() + timedelta(seconds=3)
        await seed(engine, MESSAGES, days=1, first_due=due)
        settings = settings_for(sandbox, db.url, global_per_second=1_000_000, per_chat_per_second=1_000)
        async with running_app(settings, engine) as application:
            scheduler = application.bot_data["scheduler"]
            gate = application.bot.rate_limiter

            async def send_message(chat_id, text, rate_limit_args=None, **kwargs):
                await rate_limit_args.on_dispatch()
                await asyncio.sleep(0.003)
                return _Sent()

            stub = type("StubBot", (), {"send_message": staticmethod(send_message), "rate_limiter": gate})()
            scheduler.courier.channels[TelegramChannel.name] = TelegramChannel(stub)
            await asyncio.sleep(max(0.0, (due - utc_now()).total_seconds()))
            cpu, started = time.process_time(), time.perf_counter()
            while (await counts_by_state(scheduler.rt)).get("sent", 0) < MESSAGES:
                await asyncio.sleep(0.05)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        sandbox.stop()
        await engine.dispose()
        db.cleanup()
    return {"part": f"courier + {db.label} only (HTTP stubbed, 3 ms)", "rate_per_s": MESSAGES / elapsed,
            "cpu_ms_per_message": 1000 * cpu / MESSAGES}
