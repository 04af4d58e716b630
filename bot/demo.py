"""`make demo`: a scripted trial against the local Bot API sandbox with an injected clock.

One coordinator and two patients (one Chinese, one English) go from invitation to the end of
a 14-day course. The conversation is printed as it happens. Nothing is left running.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tomllib
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.app import build_application, on_startup, on_stop
from bot.config import Settings, require_deployable, settings_from_mapping
from bot.db.engine import make_engine
from bot.db.migrate import upgrade
from bot.sandbox import BotApiSandbox
from bot.services.clock import FakeClock

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"
SHANGHAI = ZoneInfo("Asia/Shanghai")
NURSE = 100000001
PATIENTS = {8101: ("zh-hans", "zh_Hans", "NJ-101"), 8102: ("en", "en", "NJ-102")}


class Transcript:
    def __init__(self, sandbox: BotApiSandbox, names: dict[int, str]) -> None:
        self.sandbox, self.names, self.seen, self.edits = sandbox, names, 0, {}

    def user(self, user_id: int, action: str) -> None:
        print(f"\n  {self.names[user_id]} ▶ {action}")

    def flush(self) -> None:
        for message in self.sandbox.sent[self.seen:]:
            self._show(message, "bot")
        self.seen = len(self.sandbox.sent)
        for message in self.sandbox.sent:
            if len(message.history) != self.edits.get(id(message), 0):
                self.edits[id(message)] = len(message.history)
                self._show(message, "bot (edited)")

    def _show(self, message, who: str) -> None:
        print(f"  {who} → {self.names.get(message.chat_id, message.chat_id)}:")
        for line in (message.text or "").splitlines():
            print(f"      {line}")
        if message.button_texts:
            print("      " + "  ".join(f"[{b}]" for b in message.button_texts))


def demo_settings(sandbox: BotApiSandbox, database_url: str) -> Settings:
    data = tomllib.loads(EXAMPLE.read_text("utf-8"))
    data["telegram"].update(token=sandbox.token, base_url=sandbox.base_url, bot_username=sandbox.bot_username)
    data["database"]["url"] = database_url
    data["delivery"].update(sweep_seconds=3600, global_per_second=200, per_chat_per_second=50)
    # The sandbox keeps the example's placeholder ids and phones; every other refusal still applies.
    return require_deployable(settings_from_mapping(data, env={}), sandbox=True)


MARKER = ".adherence-demo-output"


class DemoOutputRefused(Exception):
    """--out names a folder with files the demo did not put there."""


def prepare_output(out_dir: Path) -> Path:
    """Empty (or create) the demo's output folder, but only one the demo made: a folder holding
    anything else is refused, never deleted."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DemoOutputRefused(f"{out_dir} is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MARKER).is_file():
        raise DemoOutputRefused(f"{out_dir} is not empty and was not created by the demo; "
                                "choose a new or empty folder with --out")
    if (out_dir / MARKER).is_file():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER).write_text("written by `adherence-bot demo`; the next demo run may replace this folder\n",
                                  "utf-8")
    return out_dir


async def run_demo(*, out_dir: Path, settings: Settings | None = None) -> int:
    out_dir = prepare_output(out_dir)
    database_url = f"sqlite+aiosqlite:///{out_dir / 'demo.db'}"
    engine = make_engine(database_url)
    await upgrade(engine)
    clock = FakeClock(datetime(2026, 12, 1, 1, 0, tzinfo=timezone.utc))
    async with BotApiSandbox() as sandbox:
        settings = demo_settings(sandbox, database_url)
        app = build_application(settings, engine=engine, clock=clock)
        await app.initialize()
        await on_startup(app)
        await app.start()
        await app.updater.start_polling(poll_interval=0, timeout=1)
        scheduler = app.bot_data["scheduler"]
        names = {NURSE: "nurse (zh)", 8101: "patient NJ-101 (中文)", 8102: "patient NJ-102 (English)"}
        show = Transcript(sandbox, names)

        async def settle() -> None:
            await _idle(sandbox)
            await scheduler.tick()
            await _idle(sandbox)
            show.flush()

        async def press(user_id: int, text: str, message=None) -> None:
            user = sandbox.user(user_id, language_code=PATIENTS.get(user_id, ("zh-hans",))[0])
            message = message or next(m for m in reversed(user.messages) if m.buttons)
            label, data = next((b for b in message.buttons if text in b[0]))
            show.user(user_id, f"taps [{label}]")
            user.press(message, data)
            await settle()

        nurse = sandbox.user(NURSE, language_code="zh-hans")

        async def nurse_says(command: str, payload: str | None = None) -> list:
            before = len(sandbox.messages(NURSE))
            show.user(NURSE, f"{command} {payload or ''}".strip())
            nurse.send_command(command, payload)
            await sandbox.wait_for(lambda: len(sandbox.messages(NURSE)) > before, timeout=10)
            await settle()
            return sandbox.messages(NURSE)[before:]

        print("=== adherence-bot demo: NCT07101627, site NJ, accelerated clock ===")
        for user_id, (language_code, locale, subject) in PATIENTS.items():
            print(f"\n-- the coordinator invites {subject}")
            replies = await nurse_says("/invite", subject)
            token = next(re.search(r"start=([A-Za-z0-9_-]+)", m.text or "").group(1)
                         for m in replies if re.search(r"start=", m.text or ""))
            qr = next(m for m in replies if m.kind == "photo")
            (out_dir / f"invitation-{subject}.png").write_bytes(qr.file_bytes)
            user = sandbox.user(user_id, language_code=language_code)
            show.user(user_id, "scans the QR code and opens the link (/start <token>)")
            user.send_command("/start", token)
            await settle()
            await press(user_id, "中文" if locale == "zh_Hans" else "English")
            await press(user_id, user.last_message.button_texts[0])  # agree
            await press(user_id, "08:00")
            await press(user_id, user.last_message.button_texts[0])  # confirm
        for user_id, (_, _, subject) in PATIENTS.items():
            print(f"\n-- the coordinator registers cycle 1 for {subject}: chemotherapy ended 2026-12-01")
            preview = next(m for m in await nurse_says("/cycle", f"{subject} 2026-12-01") if m.buttons)
            await press(NURSE, preview.button_texts[0], preview)

        script = {  # day → (zh patient, en patient)
            2: ("later", "taken"), 4: ("silent", "taken"), 6: ("taken", "missed"), 9: ("taken", "same_day"),
            11: ("emergency", "taken"), 13: ("taken", "silent"),
        }
        for day in range(1, 15):
            local = datetime.combine(date(2026, 12, 1) + timedelta(days=day), datetime.min.time(), SHANGHAI)
            clock.set(local.replace(hour=8))
            print(f"\n===== {local.date()} 08:00 Asia/Shanghai — course day {day} =====")
            await settle()
            for user_id in PATIENTS:  # answer "did you take yesterday's dose?" (a late report)
                question = next((m for m in sandbox.messages(user_id)
                                 if len(m.buttons) == 2 and m.buttons[0][1].endswith(":t")), None)
                if question is not None:
                    await press(user_id, question.button_texts[0], question)
            for user_id, action in zip(PATIENTS, script.get(day, ("taken", "taken"))):
                await _act(sandbox, show, settle, press, clock, user_id, action)
            clock.set(local.replace(hour=23, minute=59))
            await settle()
        clock.set(datetime(2026, 12, 16, 8, 0, tzinfo=SHANGHAI))
        print("\n===== after the course =====")
        await settle()
        await nurse_says("/digest")
        chart = next(m for m in await nurse_says("/report") if m.kind == "photo")
        (out_dir / "adherence-chart.png").write_bytes(chart.file_bytes)
        export = next(m for m in await nurse_says("/export") if m.kind == "document")
        (out_dir / export.filename).write_bytes(export.file_bytes)
        await app.updater.stop()
        await app.stop()
        await on_stop(app)
        await app.shutdown()
    await engine.dispose()
    print(f"\nDemo finished. Written to {out_dir}/: " + ", ".join(sorted(p.name for p in out_dir.iterdir() if p.name != MARKER)))
    return 0


async def _idle(sandbox: BotApiSandbox) -> None:
    """Let in-flight updates and replies land before printing."""
    count = -1
    while count != len(sandbox.calls):
        count = len(sandbox.calls)
        await asyncio.sleep(0.08)


async def _act(sandbox, show, settle, press, clock, user_id: int, action: str) -> None:
    user = sandbox.user(user_id)
    reminder = next((m for m in reversed(user.messages) if len(m.buttons) == 4), None)
    if action == "silent":
        show.user(user_id, "does not answer")
        clock.advance(hours=2)
        await settle()
        return
    if action == "later":
        await press(user_id, user.messages[-1].button_texts[1], reminder)
        clock.advance(minutes=30)
        await settle()
        await press(user_id, user.last_message.button_texts[0], user.last_message)
        return
    if action in ("same_day", "emergency"):
        await press(user_id, reminder.button_texts[0], reminder)
        user.press(reminder, "m:report")
        show.user(user_id, "taps [report a symptom]")
        await settle()
        picker = user.last_message
        code = "urine_blood" if action == "same_day" else "black_stool"
        show.user(user_id, f"picks {code}")
        user.press(picker, f"s:{code}")
        await settle()
        user.press(picker, "s:_send")
        show.user(user_id, "taps [Send]")
        await settle()
        if action == "emergency":
            clock.advance(minutes=6)
            await settle()  # the alert repeats until acknowledged
            alert = next(m for m in reversed(sandbox.messages(NURSE)) if m.buttons)
            nurse = sandbox.user(NURSE, language_code="zh-hans")
            show.user(NURSE, f"taps [{alert.button_texts[0]}]")
            nurse.press(alert, alert.buttons[0][1])
            await settle()
        return
    label = reminder.button_texts[0] if action == "taken" else reminder.button_texts[2]
    await press(user_id, label, reminder)
    if action == "missed":
        await press(user_id, user.last_message.button_texts[0], user.last_message)
