"""Property-based fuzzing of the update handlers (Hypothesis) against the real Application.

The bot runs in its own thread and event loop for the whole module; each Hypothesis example
sends random texts, commands and callback payloads from random users over real HTTP, and
checks: no unhandled handler error, every reply in a known language, nothing changed.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from datetime import date, datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import func, select

from bot.db.engine import make_engine
from bot.db.migrate import upgrade
from bot.db.models import Course, DoseDay, Invitation, Patient, SymptomReport
from bot.sandbox import BotApiSandbox
from bot.services import courses
from bot.services.clock import FakeClock
from tests.e2e.harness import Harness, make_settings
from tests.e2e.test_patient_journey import enrol

ENROLLED = 7501
COORDINATORS = {100000001, 100000011}  # their commands (/invite, /cycle …) legitimately change state
ASCII_OR_CHINESE = re.compile(r"^[\x00-\x7f\u00a0-\u00ff\u2000-\u2bff\u3000-\u303f\u4e00-\u9fff\uff00-\uffef\U0001f300-\U0001faff]*$", re.S)


class BotThread:
    def __init__(self, tmp_path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.url = f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}"

    def run(self, coroutine, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def start(self) -> None:
        self.engine = make_engine(self.url)
        await upgrade(self.engine)
        self.sandbox = BotApiSandbox()
        await self.sandbox.start()
        clock = FakeClock(datetime(2026, 12, 1, 1, 0, tzinfo=timezone.utc))
        self.h = Harness(self.sandbox, make_settings(self.sandbox, self.url), self.engine, clock)
        await self.h.start()
        await enrol(self.h, ENROLLED, "en", "English", subject="NJ-FUZZ")
        await courses.add_course(self.h.rt, subject_id="NJ-FUZZ", chemo_end=date(2026, 12, 1), actor_kind="operator",
                               actor_id="test")
        await self.h.tick(datetime(2026, 12, 2, 0, 0, tzinfo=timezone.utc))

    async def snapshot(self):
        async with self.h.rt.session() as session:
            counts = []
            for model in (Patient, Course, Invitation, SymptomReport):
                counts.append((await session.exec(select(func.count()).select_from(model))).one())
            states = (await session.exec(select(DoseDay.state).order_by(DoseDay.id))).all()
        return counts, list(states)

    async def stop(self) -> None:
        await self.h.stop()
        await self.sandbox.stop()
        await self.engine.dispose()


@pytest.fixture(scope="module")
def bot_thread(tmp_path_factory):
    bot = BotThread(tmp_path_factory.mktemp("fuzz"))
    bot.run(bot.start())
    yield bot
    bot.run(bot.stop())
    bot.loop.call_soon_threadsafe(bot.loop.stop)


users = st.sampled_from([ENROLLED, 7502, 7503, 100000001, 100000011])
commands = st.sampled_from(["/start", "/status", "/help", "/time", "/stop", "/report", "/language", "/cycle",
                            "/invite", "/patients", "/export", "/unknown"])
callback_data = st.one_of(
    st.text(max_size=80),
    st.builds(lambda k, n, a: f"{k}:{n}:{a}", st.sampled_from(["d", "r", "s", "e", "m", "a", "zz"]),
              st.integers(-5, 10**14), st.sampled_from(["t", "l", "m", "x", "", "forgot", "lang"])),
)
actions = st.one_of(
    st.tuples(st.just("text"), users, st.text(max_size=200)),
    st.tuples(st.just("command"), users, st.tuples(commands, st.text(alphabet=st.characters(blacklist_categories=["Cs", "Zs", "Cc"]), max_size=40))),
    st.tuples(st.just("callback"), users, callback_data),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(action=actions)
def test_random_updates_never_crash_or_change_state(bot_thread, action, caplog):
    kind, user_id, payload = action
    sandbox = bot_thread.sandbox
    # /stop, /time and /language are legitimate state changes: fuzz them only for strangers
    if kind == "command" and payload[0] in ("/stop", "/language") and user_id == ENROLLED:
        return
    before = bot_thread.run(bot_thread.snapshot())
    calls_before = len(sandbox.calls)
    user = sandbox.user(user_id, language_code="en")
    caplog.set_level(logging.ERROR)
    caplog.clear()

    async def act():
        if kind == "text":
            if not payload.strip():
                return
            user.send_text(payload)
        elif kind == "command":
            user.send_command(payload[0], payload[1] or None)
        else:
            target = next((m for m in reversed(sandbox.messages(ENROLLED)) if m.buttons), None) \
                or sandbox.messages(ENROLLED)[-1]
            user.press(target, payload)
        await sandbox.wait_for(lambda: len(sandbox.calls) > calls_before, timeout=5)
        await asyncio.sleep(0.05)

    bot_thread.run(act())
    errors = [r for r in caplog.records if "handler_error" in r.getMessage()]
    assert not errors, errors[0].getMessage()
    for call in sandbox.calls[calls_before:]:
        text = call.params.get("text") or ""
        # What a patient wrote is relayed to the team verbatim, in quotes: only our own words are checked.
        text = re.sub(r"“.*”", "", text, flags=re.S) if call.chat_id in COORDINATORS | {100000002} else text
        assert ASCII_OR_CHINESE.match(text), text
    after = bot_thread.run(bot_thread.snapshot())
    coordinator_command = kind == "command" and user_id in COORDINATORS
    if not coordinator_command and not (kind == "command" and payload[0] == "/time"):
        assert after == before
