"""Helpers for the scheduler tests: bulk seeding, in-process apps and `adherence-bot run` subprocesses."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tomllib
from collections import Counter
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select

from bot.db.engine import session_factory
from bot.db.models import Course, DoseDay, Outbox, Patient
from bot.sandbox import BotApiSandbox
from bot.services.clock import FakeClock
from tests.e2e.harness import EXAMPLE, Harness, make_settings

ROOT = Path(__file__).resolve().parents[2]
UTC = timezone.utc
CHAT_BASE = 6_000_000


async def seed_due(engine, count: int, *, due_at: datetime, closes_at: datetime | None = None,
                   tz: str = "Asia/Shanghai", reminder_time: str = "08:00", start: int = 0, site: str = "NJ",
                   locale: str = "en") -> list[tuple[int, int, int]]:
    """`count` active patients, each with a one-day course whose day is due at `due_at`.

    Rows are written directly (no outbox rows yet): the scheduler's lifecycle queues the
    reminders, exactly as for a course registered by a coordinator. Returns (patient id,
    chat id, dose day id) in due order."""
    closes_at = closes_at or due_at + timedelta(hours=8)
    local = due_at.astimezone(ZoneInfo(tz)).date()
    now = due_at - timedelta(days=1)
    subjects = [f"{site}-S{start + i:05d}" for i in range(count)]
    async with session_factory(engine)() as session:
        await session.exec(insert(Patient), params=[dict(
            subject_id=s, site_id=site, account=str(CHAT_BASE + start + i), address=str(CHAT_BASE + start + i),
            locale=locale, timezone=tz, reminder_time=reminder_time, status="active", unreachable=False,
            enrolled_at=now, created_at=now) for i, s in enumerate(subjects)])
        patients = dict((await session.exec(select(Patient.subject_id, Patient.id)
                                            .where(Patient.subject_id.in_(subjects)))).all())
        ids = [patients[s] for s in subjects]
        await session.exec(insert(Course), params=[dict(
            patient_id=p, cycle=1, chemo_end=local - timedelta(days=1), first_day=local, last_day=local,
            status="active", source="cli", confirmed=True, created_at=now, created_by="test") for p in ids])
        courses = dict((await session.exec(select(Course.patient_id, Course.id)
                                           .where(Course.patient_id.in_(ids)))).all())
        await session.exec(insert(DoseDay), params=[dict(
            patient_id=p, course_id=courses[p], cycle=1, day=1, local_date=local, due_at=due_at, closes_at=closes_at,
            late_until=closes_at + timedelta(hours=24), state="scheduled", late=False, snoozes=0) for p in ids])
        doses = dict((await session.exec(select(DoseDay.patient_id, DoseDay.id)
                                         .where(DoseDay.patient_id.in_(ids)))).all())
        await session.commit()
    return [(p, CHAT_BASE + start + i, doses[p]) for i, p in enumerate(ids)]


async def outbox_states(engine, *where) -> Counter:
    async with session_factory(engine)() as session:
        return Counter(dict((await session.exec(select(Outbox.state, func.count()).where(*where)
                                                .group_by(Outbox.state))).all()))


async def outbox_rows(engine, *where) -> list[Outbox]:
    async with session_factory(engine)() as session:
        return list((await session.exec(select(Outbox).where(*where))).scalars().all())


def reminders_per_chat(sandbox: BotApiSandbox, chats) -> Counter:
    wanted = set(chats)
    return Counter(m.chat_id for m in sandbox.sent if m.chat_id in wanted)


@asynccontextmanager
async def app_on(sandbox: BotApiSandbox, engine, database_url: str, *, clock: FakeClock | None = None,
                 start: datetime | None = None, **overrides):
    """The real Application against `sandbox`; stopped gracefully (scheduler first) on exit."""
    clock = clock or FakeClock(start or datetime(2026, 12, 1, 1, 0, tzinfo=UTC))
    harness = Harness(sandbox, make_settings(sandbox, database_url, **overrides), engine, clock)
    await harness.start()
    try:
        yield harness
    finally:
        await stop(harness)


async def tick_at(harness: Harness, when: datetime) -> int:
    """Move the fake clock only once whatever the scheduler is doing at the current instant has
    finished there (a background pass still recording would otherwise stamp the new time)."""
    await harness.tick()
    return await harness.tick(when)


async def stop(harness: Harness) -> None:
    if harness.app is not None:
        await harness.scheduler.stop()
        await harness.stop()


# --- `adherence-bot run` as a subprocess ------------------------------------------------------------
def write_config(path: Path, sandbox: BotApiSandbox, database_url: str, **delivery) -> Path:
    data = tomllib.loads(EXAMPLE.read_text("utf-8"))
    lines = [f'[telegram]\nbase_url = "{sandbox.base_url}"\nbot_username = "{sandbox.bot_username}"\n',
             f'[database]\nurl = "{database_url}"\n',
             "[delivery]\n" + "".join(f"{k} = {v}\n" for k, v in {
                 **{k: data["delivery"][k] for k in data["delivery"]}, "sweep_seconds": 30, **delivery}.items()),
             '[logging]\nformat = "kv"\nlevel = "INFO"\n']
    text = EXAMPLE.read_text("utf-8")
    # Keep sites and triage from the example; replace the sections we set.
    tail = text[text.index("# ---- Sites"):]
    path.write_text("\n".join(lines) + "\n" + tail, "utf-8")
    return path


class BotProcess:
    """`python -m bot run --config <file>`, with the sandbox's token in the environment."""

    def __init__(self, config: Path, sandbox: BotApiSandbox) -> None:
        self.config, self.sandbox = config, sandbox
        self.process: asyncio.subprocess.Process | None = None
        self.log = bytearray()
        self._reader: asyncio.Task | None = None

    async def start(self) -> BotProcess:
        env = {**os.environ, "TELEGRAM_BOT_TOKEN": self.sandbox.token, "PYTHONUNBUFFERED": "1"}
        env.pop("ADHERENCE_BOT_CONFIG", None)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--sandbox", "--config", str(self.config), cwd=str(ROOT), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        while chunk := await self.process.stdout.read(65536):
            self.log.extend(chunk)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def output(self) -> str:
        return self.log.decode("utf-8", "replace")

    async def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while "event=scheduler_ready" not in self.output:
            if self.process.returncode is not None:
                raise AssertionError(f"bot exited with {self.process.returncode}:\n{self.output[-3000:]}")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"bot not ready within {timeout}s:\n{self.output[-3000:]}")
            await asyncio.sleep(0.02)

    async def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        await self._reader

    async def terminate(self, timeout: float = 20.0) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
                raise AssertionError(f"bot ignored SIGTERM for {timeout}s:\n{self.output[-3000:]}") from None
        await self._reader
        return self.process.returncode


async def wait_until(predicate, *, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        await asyncio.sleep(interval)


