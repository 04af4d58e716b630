"""What the benchmarks share: a Bot API sandbox in its own process, fresh databases, bulk seeding,
and the real Application started in this process."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import tempfile
import time
import tomllib
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, text

from bot.config import settings_from_mapping
from bot.db.engine import is_sqlite, make_engine, normalize_url
from bot.db.migrate import upgrade
from bot.db.models import Course, DoseDay, Patient

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.toml"
UTC = timezone.utc
SHANGHAI = ZoneInfo("Asia/Shanghai")
CHAT_BASE = 7_000_000
CHUNK = 2_000


# --- the sandbox, in a process of its own (the bot gets a CPU to itself) ---------------------------
def _sandbox_child(conn, enforce_limits: bool) -> None:
    from bot.sandbox import BotApiSandbox

    async def serve() -> None:
        sandbox = BotApiSandbox(enforce_limits=enforce_limits)
        await sandbox.start()
        conn.send({"base_url": sandbox.base_url, "token": sandbox.token, "username": sandbox.bot_username})
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command == "stats":
                sends = [(c.timestamp, c.chat_id) for c in sandbox.calls
                         if c.method == "sendMessage" and c.status == 200]
                staff = [(c.timestamp, c.chat_id, c.params.get("text") or "") for c in sandbox.calls
                         if c.method == "sendMessage" and c.status == 200 and (c.chat_id or 0) >= 100_000_000]
                conn.send({"sends": sends, "staff_sends": staff, "too_many_requests": sandbox.too_many_requests_count,
                           "calls": len(sandbox.calls), "cpu_s": time.process_time()})
            else:
                break
        await sandbox.stop()
        conn.send("stopped")

    asyncio.run(serve())


class SandboxProcess:
    def __init__(self, *, enforce_limits: bool) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_sandbox_child, args=(child, enforce_limits), daemon=True)
        self._process.start()
        info = self._conn.recv()
        self.base_url, self.token, self.bot_username = info["base_url"], info["token"], info["username"]

    async def stats(self) -> dict:
        loop = asyncio.get_running_loop()
        self._conn.send("stats")
        return await loop.run_in_executor(None, self._conn.recv)

    def stop(self) -> None:
        self._conn.send("stop")
        self._conn.recv()
        self._process.join(5)


# --- databases -------------------------------------------------------------------------------------
@dataclass
class Database:
    url: str
    label: str
    _tmp: str | None = None

    def cleanup(self) -> None:
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)


async def fresh_database(kind: str) -> Database:
    """A migrated, empty database: a new SQLite file, or BENCH_DATABASE_URL (PostgreSQL) wiped."""
    if kind == "sqlite":
        directory = tempfile.mkdtemp(prefix="adherence-bench-")
        url = f"sqlite+aiosqlite:///{directory}/bench.db"
        engine = make_engine(url)
        await upgrade(engine)
        await engine.dispose()
        return Database(url, "SQLite", directory)
    url = normalize_url(os.environ["BENCH_DATABASE_URL"])
    if is_sqlite(url):
        raise SystemExit("BENCH_DATABASE_URL must be a PostgreSQL URL")
    engine = make_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await upgrade(engine)
    await engine.dispose()
    return Database(url, "PostgreSQL")


def databases() -> list[str]:
    return ["sqlite"] + (["postgresql"] if os.environ.get("BENCH_DATABASE_URL") else [])


async def seed(engine, patients: int, *, days: int, first_due: datetime, spacing: timedelta = timedelta(0),
               day_step: timedelta = timedelta(days=1)) -> None:
    """`patients` active patients with one course of `days` dose days each; patient i's day 1 is
    due at first_due + i*spacing, later days `day_step` apart. Written in bulk, like a migration."""
    now = first_due - timedelta(days=2)
    async with engine.begin() as connection:
        for start in range(0, patients, CHUNK):
            block = range(start, min(start + CHUNK, patients))
            await connection.execute(insert(Patient), [dict(
                subject_id=f"NJ-B{i:06d}", site_id="NJ", channel="telegram", account=str(CHAT_BASE + i),
                address=str(CHAT_BASE + i),
                locale="zh_Hans" if i % 2 else "en", timezone="Asia/Shanghai", reminder_time="08:00",
                status="active", unreachable=False, enrolled_at=now, created_at=now) for i in block])
        ids = dict((await connection.execute(select(Patient.subject_id, Patient.id))).all())
        first_local = first_due.astimezone(SHANGHAI).date()
        for start in range(0, patients, CHUNK):
            block = range(start, min(start + CHUNK, patients))
            await connection.execute(insert(Course), [dict(
                patient_id=ids[f"NJ-B{i:06d}"], cycle=1, chemo_end=first_local - timedelta(days=1),
                first_day=first_local, last_day=first_local + timedelta(days=days - 1), status="active",
                source="cli", confirmed=True, created_at=now, created_by="bench") for i in block])
        courses = dict((await connection.execute(select(Course.patient_id, Course.id))).all())
        rows = []
        for i in range(patients):
            patient = ids[f"NJ-B{i:06d}"]
            for day in range(1, days + 1):
                due = first_due + i * spacing + (day - 1) * day_step
                local: date = due.astimezone(SHANGHAI).date()
                closes = due + timedelta(hours=15)
                rows.append(dict(patient_id=patient, course_id=courses[patient], cycle=1, day=day, local_date=local,
                                 due_at=due, closes_at=closes, late_until=closes + timedelta(hours=24),
                                 state="scheduled", late=False, snoozes=0))
                if len(rows) >= CHUNK * 5:
                    await connection.execute(insert(DoseDay), rows)
                    rows = []
        if rows:
            await connection.execute(insert(DoseDay), rows)
    if engine.dialect.name == "postgresql":
        # Statistics, as autovacuum gathers within a minute of a bulk load (this machine's server
        # runs with autovacuum off): without them the planner takes 140,000 rows for a few dozen.
        async with engine.connect() as connection:
            await connection.execute(text("ANALYZE"))


# --- settings and the in-process bot ----------------------------------------------------------------
def settings_for(sandbox: SandboxProcess, database_url: str, **delivery):
    data = tomllib.loads(EXAMPLE.read_text("utf-8"))
    data["telegram"].update(token=sandbox.token, base_url=sandbox.base_url, bot_username=sandbox.bot_username)
    data["database"]["url"] = database_url
    data["delivery"].update(sweep_seconds=60, send_timeout_seconds=10)
    settings = settings_from_mapping(data, env={})
    if delivery:  # limits beyond what an operator may configure ("lifted") skip validation on purpose
        settings = settings.model_copy(update={"delivery": settings.delivery.model_copy(update=delivery)})
    return settings


@asynccontextmanager
async def running_app(settings, engine):
    from bot.app import build_application, on_startup, on_stop

    application = build_application(settings, engine=engine)
    await application.initialize()
    await on_startup(application)
    await application.start()
    await application.updater.start_polling(poll_interval=0, timeout=1)
    try:
        yield application
    finally:
        await application.updater.stop()
        await application.stop()
        await on_stop(application)  # what run_polling's post_stop does: the scheduler stops with PTB
        await application.shutdown()


def write_config(path: Path, sandbox: SandboxProcess, database_url: str) -> Path:
    text_ = EXAMPLE.read_text("utf-8")
    head = (f'[telegram]\nbase_url = "{sandbox.base_url}"\nbot_username = "{sandbox.bot_username}"\n\n'
            f'[database]\nurl = "{database_url}"\n\n[logging]\nformat = "kv"\nlevel = "INFO"\n\n')
    path.write_text(head + text_[text_.index("# ---- Sites"):], "utf-8")
    return path


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def monotonic_of(instant: datetime) -> float:
    """An aware instant on this host's monotonic clock (shared by all processes on Linux)."""
    return instant.timestamp() - (time.time() - time.monotonic())


def utc_now() -> datetime:
    return datetime.now(UTC)
