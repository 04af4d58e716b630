"""The Bot API sandbox, driven over real HTTP by a real ``telegram.Bot`` and PTB ``Application``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from telegram import Bot, BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (BadRequest, Conflict, EndPointNotFound, Forbidden, InvalidToken,
                            NetworkError, RetryAfter, TimedOut)
from telegram.ext import (Application, ApplicationBuilder, CallbackQueryHandler, CommandHandler,
                          ContextTypes)

from bot.sandbox import BotApiSandbox, SandboxTimeout, parse_html

# PTB 22 warns whenever RetryAfter.retry_after is read (it becomes a timedelta in v23).
pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
ROOT = Path(__file__).resolve().parents[2]
KEYBOARD = InlineKeyboardMarkup([[InlineKeyboardButton("Taken", callback_data="dose:7:taken"),
                                  InlineKeyboardButton("Skipped", callback_data="dose:7:skip")]])


def seconds(error: RetryAfter) -> float:
    """retry_after is an int in PTB 22 (timedelta with PTB_TIMEDELTA=1); accept both."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = error.retry_after
    return value.total_seconds() if hasattr(value, "total_seconds") else value


@pytest.fixture
async def sandbox() -> AsyncIterator[BotApiSandbox]:
    async with BotApiSandbox() as sb:
        yield sb


@pytest.fixture
async def bot(sandbox: BotApiSandbox) -> AsyncIterator[Bot]:
    async with Bot(sandbox.token, base_url=sandbox.base_url,
                   base_file_url=sandbox.base_file_url) as b:
        yield b


@contextlib.asynccontextmanager
async def running_app(sandbox: BotApiSandbox, *handlers) -> AsyncIterator[Application]:
    """A real PTB Application polling the sandbox, as production runs it."""
    app = (ApplicationBuilder().token(sandbox.token).base_url(sandbox.base_url)
           .base_file_url(sandbox.base_file_url).build())
    for handler in handlers:
        app.add_handler(handler)
    async with app:
        await app.start()
        await app.updater.start_polling(poll_interval=0)
        try:
            yield app
        finally:
            await app.updater.stop()
            await app.stop()


async def test_get_me_bad_token_and_unknown_method(sandbox: BotApiSandbox, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (123456, "adherence_test_bot", True)
    with pytest.raises(InvalidToken):
        async with Bot("999:WRONG", base_url=sandbox.base_url):
            pass
    assert sandbox.calls[-1].status == 401
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("noSuchMethod")
    assert sandbox.calls[-1].status == 404


async def test_start_command_with_payload_reaches_command_handler(sandbox: BotApiSandbox) -> None:
    seen: list[list[str]] = []

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        seen.append(list(context.args))
        await update.effective_message.reply_text(
            f"Welcome, {update.effective_user.first_name} ({update.effective_user.language_code})")

    alice = sandbox.user(42, language_code="ru", first_name="Alice")
    async with running_app(sandbox, CommandHandler("start", start)):
        update = alice.send_command("/start", "invite-abc")
        assert update["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
        (reply,) = await sandbox.wait_for_messages(42, 1)
    assert seen == [["invite-abc"]]
    assert reply.text == "Welcome, Alice (ru)" and alice.last_message is reply
    ids = [u["update_id"] for u in sandbox.updates]
    assert ids == sorted(set(ids))


async def test_button_press_edits_message_and_history_keeps_old_version(
        sandbox: BotApiSandbox) -> None:
    async def remind(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_text("<b>Dose due</b>", parse_mode="HTML",
                                                  reply_markup=KEYBOARD, protect_content=True)

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        await query.answer("Saved")
        await query.edit_message_text(f"Recorded: {query.data}")

    user = sandbox.user(7)
    async with running_app(sandbox, CommandHandler("remind", remind),
                           CallbackQueryHandler(pressed)):
        user.send_command("/remind")
        (message,) = await sandbox.wait_for_messages(7, 1)
        assert message.buttons == [("Taken", "dose:7:taken"), ("Skipped", "dose:7:skip")]
        assert message.protect_content and message.plain_text == "Dose due"
        with pytest.raises(AssertionError, match=r"available: \['Taken', 'Skipped'\]"):
            user.press_button("Later")
        user.press_button("Taken")
        await sandbox.wait_for(lambda: message.history)
    assert message.text == "Recorded: dose:7:taken"
    assert message.history == [("<b>Dose due</b>", KEYBOARD.to_dict())]
    assert message.reply_markup is None and message.buttons == []  # edit dropped the keyboard
    assert [a["text"] for a in sandbox.callback_answers] == ["Saved"]


async def test_set_my_commands_per_language(sandbox: BotApiSandbox, bot: Bot) -> None:
    await bot.set_my_commands([BotCommand("start", "Start"), BotCommand("today", "Today")])
    await bot.set_my_commands([BotCommand("start", "Начать")], language_code="ru")
    assert sandbox.commands[("default", "")] == [{"command": "start", "description": "Start"},
                                                 {"command": "today", "description": "Today"}]
    assert sandbox.commands[("default", "ru")] == [{"command": "start", "description": "Начать"}]
    assert [c.description for c in await bot.get_my_commands(language_code="ru")] == ["Начать"]
    with pytest.raises(BadRequest, match="(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand("Start", "x")])


async def test_photo_and_document_bytes_round_trip(sandbox: BotApiSandbox, bot: Bot) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    sent = await bot.send_photo(5, png, filename="qr.png", caption="Scan me")
    doc = await bot.send_document(5, b"a,b\n1,2\n", filename="report.csv")
    photo_msg, doc_msg = sandbox.messages(5)
    assert (photo_msg.kind, photo_msg.file_bytes, photo_msg.filename, photo_msg.text) == (
        "photo", png, "qr.png", "Scan me")
    assert (doc_msg.kind, doc_msg.file_bytes, doc_msg.filename) == ("document", b"a,b\n1,2\n",
                                                                   "report.csv")
    assert doc.document.file_name == "report.csv" and sent.caption == "Scan me"
    downloaded = await (await bot.get_file(sent.photo[-1].file_id)).download_as_bytearray()
    assert bytes(downloaded) == png


async def test_flood_limits_answer_429_and_ptb_raises_retry_after(
        sandbox: BotApiSandbox, bot: Bot) -> None:
    sandbox.enforce_limits = True  # toggled after start
    await bot.send_message(1, "first")
    with pytest.raises(RetryAfter) as excinfo:
        await bot.send_message(1, "second, too soon")
    assert seconds(excinfo.value) >= 1
    await bot.send_message(2, "another chat is fine")
    sandbox.global_per_second = 2
    with pytest.raises(RetryAfter):
        await bot.send_message(3, "global window full")
    assert [m.text for m in sandbox.messages(1)] == ["first"] and not sandbox.messages(3)
    assert sandbox.too_many_requests_count == 2
    assert sandbox.calls[-1].params["chat_id"] == 3 and sandbox.calls[-1].status == 429
    sandbox.enforce_limits = False
    await bot.send_message(1, "limits off")


async def test_injected_error_faults(sandbox: BotApiSandbox, bot: Bot) -> None:
    sandbox.inject_fault(kind="blocked", chat_id=9)
    with pytest.raises(Forbidden, match="(?i)bot was blocked by the user"):
        await bot.send_message(9, "hello")
    await bot.send_message(9, "fault consumed")
    sandbox.inject_fault(kind="deactivated", method="sendMessage")
    with pytest.raises(Forbidden, match="(?i)user is deactivated"):
        await bot.send_message(10, "x")
    sandbox.inject_fault(kind="chat_not_found", chat_id=11, times=None)
    for _ in range(2):
        with pytest.raises(BadRequest, match="(?i)chat not found"):
            await bot.send_message(11, "x")
    sandbox.clear_faults()
    sandbox.inject_fault(kind="flood", chat_id=12, retry_after=3)
    with pytest.raises(RetryAfter) as excinfo:
        await bot.send_message(12, "x")
    assert seconds(excinfo.value) == 3
    assert [m.text for m in sandbox.sent] == ["fault consumed"]
    await bot.get_me()  # a chat-less fault never hits getMe/getUpdates


async def test_timeout_after_accept_records_message_but_client_times_out(
        sandbox: BotApiSandbox, bot: Bot) -> None:
    sandbox.inject_fault(kind="timeout_after_accept", chat_id=4, delay=5)
    started = time.monotonic()
    with pytest.raises(TimedOut):
        await bot.send_message(4, "did it arrive?", read_timeout=0.3)
    assert time.monotonic() - started < 2
    assert [m.text for m in sandbox.messages(4)] == ["did it arrive?"]


async def test_server_error_and_refused_connection_are_not_recorded(
        sandbox: BotApiSandbox, bot: Bot) -> None:
    sandbox.inject_fault(kind="server_error", chat_id=4)
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.send_message(4, "lost")
    sandbox.inject_fault(kind="refuse", method="sendMessage")
    with pytest.raises(NetworkError):
        await bot.send_message(4, "also lost")
    assert sandbox.calls[-1].status == 0
    await bot.send_message(4, "kept")
    assert [m.text for m in sandbox.messages(4)] == ["kept"]


async def test_edit_errors_and_html_validation(sandbox: BotApiSandbox, bot: Bot) -> None:
    msg = await bot.send_message(3, "Take <i>one</i> tablet", parse_mode="HTML",
                                 reply_markup=KEYBOARD)
    assert msg.text == "Take one tablet" and msg.text_html == "Take <i>one</i> tablet"
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("Take <i>one</i> tablet", chat_id=3,
                                    message_id=msg.message_id, parse_mode="HTML",
                                    reply_markup=KEYBOARD)
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("x", chat_id=3, message_id=999)
    edited = await bot.edit_message_reply_markup(chat_id=3, message_id=msg.message_id)
    assert edited.reply_markup is None and sandbox.messages(3)[0].text == "Take <i>one</i> tablet"
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(3, "a < b", parse_mode="HTML")
    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(3, "x", reply_markup=InlineKeyboardMarkup(
            [[InlineKeyboardButton("long", callback_data="x" * 65)]]))
    assert await bot.delete_message(3, msg.message_id)
    assert sandbox.messages(3)[0].deleted
    text, entities = parse_html("<b>bold <a href='https://x.y'>link</a></b> &amp; 🙂<code>c</code>")
    assert text == "bold link & 🙂c"
    assert entities == [{"type": "bold", "offset": 0, "length": 9},
                        {"type": "text_link", "offset": 5, "length": 4, "url": "https://x.y"},
                        {"type": "code", "offset": 14, "length": 1}]


async def test_group_chat_messages_and_user_message_into_group(
        sandbox: BotApiSandbox, bot: Bot) -> None:
    sent = await bot.send_message(-100123, "ALERT: missed doses")
    assert sent.chat.type == "supergroup" and sandbox.messages(-100123)[0].text == sent.text
    update = sandbox.user(5).send_text("ack", chat_id=-100123)
    assert update["message"]["chat"]["type"] == "supergroup"
    assert update["message"]["message_id"] == 2  # ids are per chat, shared with the bot


async def test_get_updates_long_poll_offset_and_stop_release(sandbox: BotApiSandbox,
                                                            bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=0.3) == ()
    assert time.monotonic() - started >= 0.25
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)
    first = sandbox.user(1).send_text("one")
    (update,) = await asyncio.wait_for(poll, 1)
    assert update.update_id == first["update_id"] and update.message.text == "one"
    second = sandbox.user(1).send_text("two")
    assert [u.update_id for u in await bot.get_updates()] == [first["update_id"],
                                                            second["update_id"]]
    assert [u.update_id for u in await bot.get_updates(offset=second["update_id"])] == [
        second["update_id"]]
    assert await bot.get_updates(offset=second["update_id"] + 1) == ()
    poll = asyncio.create_task(bot.get_updates(timeout=30, read_timeout=40))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await sandbox.stop()
    assert await asyncio.wait_for(poll, 2) == () and time.monotonic() - started < 2
    with pytest.raises(SandboxTimeout, match="expected >= 1 messages in chat 1"):
        await sandbox.wait_for_messages(1, 1, timeout=0.05)


async def test_webhook_delivery_with_secret_header(sandbox: BotApiSandbox, bot: Bot) -> None:
    received: list[tuple[str | None, dict]] = []

    async def receive(request: web.Request) -> web.Response:
        received.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"),
                         await request.json()))
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        assert await bot.set_webhook(url, secret_token="s3cret-token")
        update = sandbox.user(8).send_text("via webhook")
        await sandbox.wait_for(lambda: received)
        assert received == [("s3cret-token", update)]
        info = await bot.get_webhook_info()
        assert info.url == url and info.pending_update_count == 0
        with pytest.raises(Conflict):
            await bot.get_updates()
        assert await bot.delete_webhook()
        queued = sandbox.user(8).send_text("via polling")
        assert [u.update_id for u in await bot.get_updates()] == [queued["update_id"]]
    finally:
        await runner.cleanup()


async def test_ptb_application_in_webhook_mode(sandbox: BotApiSandbox) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.effective_message.reply_text(f"hello via webhook {context.args}")

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = (ApplicationBuilder().token(sandbox.token).base_url(sandbox.base_url)
           .base_file_url(sandbox.base_file_url).build())
    app.add_handler(CommandHandler("start", start))
    async with app:
        await app.start()
        await app.updater.start_webhook(listen="127.0.0.1", port=port, url_path="tg",
                                        webhook_url=f"http://127.0.0.1:{port}/tg",
                                        secret_token="ptb-secret")
        try:
            assert sandbox.webhook["secret_token"] == "ptb-secret"
            sandbox.user(3).send_command("/start", "x")
            (reply,) = await sandbox.wait_for_messages(3, 1)
        finally:
            await app.updater.stop()
            await app.stop()
    assert reply.text == "hello via webhook ['x']" and not sandbox.webhook_errors


async def test_standalone_module_serves_until_sigterm() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "bot.sandbox", "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 10)
        assert line.startswith("BASE_URL=http://127.0.0.1:")
        async with Bot("123456:SANDBOX-TOKEN", base_url=line.strip().split("=", 1)[1]) as b:
            assert (await b.get_me()).username == "adherence_test_bot"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
