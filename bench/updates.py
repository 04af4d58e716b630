"""Update-handling benchmark (issue 6): N patients press Taken on their reminder.

The updates reach the bot through the sandbox's getUpdates in batches, like real polling.
Measured end to end: updates/s (first press queued → last edit received) and p99 latency
from an update being queued to its answerCallbackQuery arriving at the sandbox. The same run
drives a bare PTB Application with one callback handler that answers and edits the same way
(no database), on the same sandbox, and reports ours / bare.

    .venv/bin/python -m bench.updates [--patients 1000] [--postgres SERVER_URL]

With --postgres (e.g. postgresql://postgres@127.0.0.1:5432) the run also measures PostgreSQL, in a
database it creates on that server and drops afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from telegram import Update
from telegram.ext import ApplicationBuilder, CallbackQueryHandler, ContextTypes
from telegram.request import HTTPXRequest

from bot.app import build_application, on_startup, on_stop
from bot.db.engine import make_engine
from bot.db.migrate import upgrade
from bot.db.models import Course, Patient
from bot.sandbox import BotApiSandbox
from bot.services.clock import FakeClock
from bot.services.courses import dose_rows
from tests.e2e.harness import make_settings

UTC = timezone.utc
DAY1 = datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
FIRST_USER = 500_000


async def _seed(rt, patients: int) -> None:
    now = rt.now()
    async with rt.session() as session:
        for i in range(patients):
            user_id = FIRST_USER + i
            patient = Patient(subject_id=f"NJ-B{i:05d}", site_id="NJ", channel="telegram", account=str(user_id),
                              address=str(user_id),
                              locale="en" if i % 2 else "zh_Hans", created_at=now, enrolled_at=now)
            session.add(patient)
            await session.flush()
            course = Course(patient_id=patient.id, cycle=1, chemo_end=date(2026, 12, 1), first_day=date(2026, 12, 2),
                            last_day=date(2026, 12, 15), created_at=now, created_by="bench")
            session.add(course)
            await session.flush()
            session.add_all(dose_rows(settings=rt.settings, patient=patient, course=course))
        await session.commit()


async def _press_all(sandbox: BotApiSandbox, patients: int, *, wait_edits: bool = True) -> tuple[float, list[float]]:
    """Press Taken on every reminder; return (updates/s, per-update latencies in seconds)."""
    reminders = []
    for i in range(patients):
        messages = sandbox.messages(FIRST_USER + i)
        reminders.append(next(m for m in messages if m.buttons and m.buttons[0][1].startswith("d:")))
    answered_before = len(sandbox.callback_answers)
    queued: dict[str, float] = {}
    start = time.monotonic()
    for i, message in enumerate(reminders):
        update = sandbox.user(FIRST_USER + i).press(message, message.buttons[0][1])
        queued[update["callback_query"]["id"]] = time.monotonic()
    await sandbox.wait_for(lambda: len(sandbox.callback_answers) - answered_before >= patients, timeout=600)
    if wait_edits:
        await sandbox.wait_for(lambda: all(m.reply_markup is None for m in reminders), timeout=600)
    elapsed = time.monotonic() - start
    answers = {c.params.get("callback_query_id"): c.timestamp for c in sandbox.calls
               if c.method == "answerCallbackQuery"}
    latencies = [answers[q] - t for q, t in queued.items() if q in answers]
    return patients / elapsed, latencies


async def run_ours(database_url: str, patients: int) -> tuple[float, list[float]]:
    engine = make_engine(database_url)
    await upgrade(engine)
    async with BotApiSandbox() as sandbox:
        settings = make_settings(sandbox, database_url)
        settings = settings.with_overrides(delivery=settings.delivery.model_copy(
            update={"global_per_second": 100_000, "per_chat_per_second": 1_000}))
        app = build_application(settings, engine=engine, clock=FakeClock(DAY1))
        await app.initialize()
        await on_startup(app)
        await app.start()
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            await _seed(app.bot_data["runtime"], patients)
            await app.bot_data["scheduler"].tick()
            app.bot_data["runtime"].clock.advance(timedelta(minutes=1))
            return await _press_all(sandbox, patients)
        finally:
            await app.updater.stop()
            await app.stop()
            await on_stop(app)
            await app.shutdown()
            await engine.dispose()


async def run_bare(patients: int) -> tuple[float, list[float]]:
    async with BotApiSandbox() as sandbox:
        # Same HTTP client settings as ours (bot/app.py), so only the handler work differs.
        app = (ApplicationBuilder().token(sandbox.token).base_url(sandbox.base_url).concurrent_updates(True)
               .request(HTTPXRequest(connection_pool_size=64)).build())

        async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            await update.callback_query.answer("Recorded.")
            await update.callback_query.edit_message_text("✅ Day 1 of 14\nTaken, recorded at 08:00. Thank you.")

        app.add_handler(CallbackQueryHandler(on_press))
        await app.initialize()
        await app.start()
        await app.updater.start_polling(poll_interval=0, timeout=1)
        try:
            for i in range(patients):  # the same reminder messages, sent by the bare bot
                await app.bot.send_message(FIRST_USER + i, "💊 Day 1 of 14", reply_markup={
                    "inline_keyboard": [[{"text": "✅ Taken", "callback_data": f"d:{i + 1}:t"}]]})
            return await _press_all(sandbox, patients)
        finally:
            await app.updater.stop()
            await app.stop()
            await app.shutdown()


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else (values[0] if values else float("nan"))


async def main(patients: int, postgres: str | None) -> str:
    bare_rate, bare_lat = await run_bare(patients)
    lines = [f"bare PTB: {bare_rate:,.0f} updates/s, p99 {_p99(bare_lat) * 1000:.0f} ms"]
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("SQLite", f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")]
        if postgres:
            targets.append(("PostgreSQL", postgres))
        for name, url in targets:
            own = None
            if name == "PostgreSQL":  # a database of this run's own on that server, dropped after
                from sim.world import create_database

                own = await create_database(url, flush_commits=True)
                url = own.url
            try:
                rate, latencies = await run_ours(url, patients)
            finally:
                if own is not None:
                    await own.drop()
            lines.append(f"adherence-bot on {name}: {rate:,.0f} updates/s, p99 {_p99(latencies) * 1000:.0f} ms, "
                         f"ratio ours/bare {rate / bare_rate:.2f} (target ≥ 0.8)")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--postgres", default=None)
    args = parser.parse_args()
    print(f"update handling, {args.patients} presses, {platform.python_version()}")
    print(asyncio.run(main(args.patients, args.postgres)))
