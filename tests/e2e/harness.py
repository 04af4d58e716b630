"""Drive the real Application over real HTTP against the local Bot API sandbox."""

from __future__ import annotations

import asyncio
import re
import tomllib
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path

from sqlmodel import select

from bot.app import build_application, on_startup, on_stop
from bot.config import settings_from_mapping
from bot.db.engine import session_factory
from bot.sandbox import BotApiSandbox
from bot.services.clock import FakeClock

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"
COORDINATOR_NJ = 100000001  # zh_Hans coordinator of site NJ
ADMIN_NJ = 100000002  # en admin listed at NJ
COORDINATOR_SH = 100000011
HAN = re.compile(r"[\u4e00-\u9fff]")


def make_settings(sandbox: BotApiSandbox, database_url: str, **overrides):
    data = tomllib.loads(EXAMPLE.read_text("utf-8"))
    data["telegram"].update(token=sandbox.token, base_url=sandbox.base_url, bot_username=sandbox.bot_username)
    data["database"]["url"] = database_url
    data["delivery"].update(sweep_seconds=3600, send_timeout_seconds=2, global_per_second=500, per_chat_per_second=50)
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    return settings_from_mapping(data, env={})


class Harness:
    def __init__(self, sandbox: BotApiSandbox, settings, engine, clock: FakeClock, *, digests: bool = False) -> None:
        self.sandbox, self.settings, self.engine, self.clock = sandbox, settings, engine, clock
        # The morning digest follows the fake clock; off unless a test is about it, so the other
        # tests' coordinator chats hold only what those tests are about.
        self.digests = digests
        self.app = None

    @property
    def rt(self):
        return self.app.bot_data["runtime"]

    @property
    def scheduler(self):
        return self.app.bot_data["scheduler"]

    async def start(self) -> None:
        self.app = build_application(self.settings, engine=self.engine, clock=self.clock)
        self.app.bot_data["digests"] = self.digests
        await self.app.initialize()
        await on_startup(self.app)
        await self.app.start()
        await self.app.updater.start_polling(poll_interval=0, timeout=1)

    async def stop(self) -> None:
        if self.app is None:
            return
        await self.app.updater.stop()
        await self.app.stop()
        await on_stop(self.app)
        await self.app.shutdown()
        self.app = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def tick(self, to: datetime | None = None) -> int:
        if to is not None:
            self.clock.set(to)
        return await self.scheduler.tick()

    async def rows(self, model, *where):
        async with session_factory(self.engine)() as session:
            return list((await session.exec(select(model).where(*where))).all())


@asynccontextmanager
async def running_bot(engine, database_url: str, *, start: datetime | None = None, digests: bool = False,
                      **overrides):
    clock = FakeClock(start or datetime(2026, 12, 1, 1, 0, tzinfo=timezone.utc))
    async with BotApiSandbox() as sandbox:
        harness = Harness(sandbox, make_settings(sandbox, database_url, **overrides), engine, clock, digests=digests)
        await harness.start()
        try:
            yield harness
        finally:
            await harness.stop()


def is_chinese(text: str) -> bool:
    return bool(HAN.search(text or ""))


def assert_language(messages, locale: str) -> None:
    """Every message to this chat is in the expected language (Chinese characters or none)."""
    for message in messages:
        text = message.text or ""
        if locale == "zh_Hans":
            assert is_chinese(text), f"expected Chinese: {text!r}"
        else:
            assert not is_chinese(text.replace("中文", "")), f"expected English: {text!r}"


async def wait_as_time_passes(h, predicate, timeout: float = 10) -> None:
    """Wait while the fake clock moves a second at a time: an edit waiting for the message it
    edits to be delivered and recorded looks again a second later."""
    for _ in range(int(timeout / 0.3)):
        if predicate():
            return
        h.clock.advance(seconds=1)
        h.rt.wake()
        await asyncio.sleep(0.3)
    assert predicate()
