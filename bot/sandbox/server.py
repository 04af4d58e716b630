"""A local stand-in for api.telegram.org that a real PTB ``Bot``/``Application`` talks to.

Why a real HTTP server rather than mocking ``Bot``: PTB's request encoding, error mapping
(RetryAfter, Forbidden, TimedOut ...), polling loop and webhook handling are then exercised
exactly as in production, and faults such as "the message was accepted but the response was
lost" can be produced at the socket level.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import re
import time
from collections import deque
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

import aiohttp
from aiohttp import web

from bot.sandbox.models import (FAULT_KINDS, ApiError, Fault, RecordedCall, SandboxTimeout,
                                SandboxUser, SentMessage, StoredFile, check_markup, check_text,
                                require_chat, render)

# Parameters that are plain strings on the wire; everything else PTB sends JSON-encoded.
_RAW_PARAMS = frozenset({"text", "caption", "parse_mode", "callback_query_id", "url",
                         "secret_token", "language_code", "action", "inline_message_id",
                         "file_id", "photo", "document", "ip_address", "description",
                         "short_description", "name", "business_connection_id", "emoji", "title"})
_SEND_METHODS = frozenset({"sendMessage", "sendPhoto", "sendDocument", "copyMessage", "editMessageText",
                           "editMessageReplyMarkup", "editMessageCaption"})
# Accepted and recorded in ``calls`` but otherwise ignored.
_ACCEPTED_METHODS = ("setMyDescription", "setMyShortDescription", "setMyName",
                     "setChatMenuButton", "close", "logOut")
_FAULT_ERRORS = {"blocked": (403, "Forbidden: bot was blocked by the user"),
                 "deactivated": (403, "Forbidden: user is deactivated"),
                 "chat_not_found": (400, "Bad Request: chat not found"),
                 "server_error": (500, "Internal Server Error")}
_NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and reply "
                 "markup are exactly the same as a current content and reply markup of the message")
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


class BotApiSandbox:
    """In-process fake of the Telegram Bot API; see the package docstring for usage."""

    def __init__(self, *, token: str = "123456:SANDBOX-TOKEN", bot_id: int = 123456,
                 bot_username: str = "adherence_test_bot", enforce_limits: bool = False,
                 global_per_second: float = 30, per_chat_per_second: float = 1,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.token, self.bot_id, self.bot_username = token, bot_id, bot_username
        self.enforce_limits = enforce_limits  # may be flipped at any time
        self.global_per_second, self.per_chat_per_second = global_per_second, per_chat_per_second
        self.host, self.port = host, port
        self.calls: list[RecordedCall] = []
        self.callback_answers: list[dict[str, Any]] = []
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.too_many_requests_count = 0
        self.updates: list[dict[str, Any]] = []  # every update ever queued, for inspection
        self.sent: list[SentMessage] = []  # every message the bot sent, all chats, in order
        self.user_messages: dict[tuple[int, int], tuple[str, str | None]] = {}  # (chat, id) → (kind, caption)
        self.webhook: dict[str, Any] | None = None  # {"url", "secret_token", ...} when set
        self.webhook_errors: list[str] = []
        self._pending: list[dict[str, Any]] = []  # queued, not yet confirmed/delivered
        self._chats: dict[int, list[SentMessage]] = {}
        self._next_message_id: dict[int, int] = {}
        self._next_update_id = 700_000_001  # apart from the example config's user ids (100000001…)
        self._users: dict[int, SandboxUser] = {}
        self._faults: list[Fault] = []
        self._files: dict[str, StoredFile] = {}
        self._callbacks: dict[str, dict[str, Any]] = {}
        self._sends: deque[float] = deque()
        self._chat_sends: dict[int, deque[float]] = {}
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._worker: asyncio.Task[None] | None = None
        self._handlers: dict[str, tuple[str, Callable[..., Any]]] = {
            name[3:].lower(): (name[3:], getattr(self, name))
            for name in dir(self) if name.startswith("_m_")}
        self._handlers.update({name.lower(): (name, self._ok) for name in _ACCEPTED_METHODS})

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._stopping = asyncio.Event()  # fresh, so it binds to the loop we run in
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._http = aiohttp.ClientSession()
        self._worker = asyncio.create_task(self._webhook_worker())

    async def stop(self) -> None:
        """Release long polls and delayed responses, then shut the server down."""
        self._stopping.set()
        self._notify()
        if self._worker:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        if self._http:
            await self._http.close()
        if self._runner:
            await self._runner.cleanup()
        self._worker = self._http = self._runner = None

    async def __aenter__(self) -> BotApiSandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://{self.host}:{self.port}/file/bot"

    # --- test-facing API -----------------------------------------------------------------------
    def user(self, user_id: int, *, language_code: str | None = "en", first_name: str = "Test",
             last_name: str | None = None, username: str | None = None) -> SandboxUser:
        user = SandboxUser(self, user_id, language_code=language_code, first_name=first_name,
                           last_name=last_name, username=username)
        self._users[user_id] = user
        return user

    def messages(self, chat_id: int) -> list[SentMessage]:
        return list(self._chats.get(chat_id, []))

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
        """Re-check ``predicate`` on every sandbox state change (and every 50 ms) until truthy.
        It returns as soon as the condition holds, so the generous default only matters on a
        loaded machine (parallel test workers) or when the condition never comes."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SandboxTimeout(f"condition {predicate!r} not met within {timeout}s")
            await self._wait_change(min(remaining, 0.05))

    async def wait_for_messages(self, chat_id: int, count: int,
                                timeout: float = 15.0) -> list[SentMessage]:
        try:
            await self.wait_for(lambda: len(self._chats.get(chat_id, [])) >= count, timeout)
        except SandboxTimeout:
            got = [m.plain_text for m in self.messages(chat_id)]
            raise SandboxTimeout(f"expected >= {count} messages in chat {chat_id} within "
                                 f"{timeout}s, got {len(got)}: {got}") from None
        return self.messages(chat_id)

    def inject_fault(self, *, kind: str, chat_id: int | None = None, method: str | None = None,
                     times: int | None = 1, retry_after: int = 1, delay: float = 0.0) -> None:
        """Queue a failure for calls matching ``chat_id``/``method``.

        Kinds: blocked, deactivated (403), chat_not_found (400), server_error (500, nothing
        recorded), flood (429 + retry_after), refuse (connection closed, nothing recorded),
        timeout_after_accept (recorded, then the answer is held ``delay`` s, default 30),
        slow (answer normally after ``delay`` s). Without ``method`` a fault only hits calls
        that carry a chat_id, so getUpdates/getMe keep working. The first matching fault is
        used and ``times`` counts down (None = forever).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if kind == "timeout_after_accept" and delay <= 0:
            delay = 30.0
        self._faults.append(Fault(kind, chat_id, method, times, retry_after, delay))

    def clear_faults(self) -> None:
        self._faults.clear()

    # --- plumbing ------------------------------------------------------------------------------
    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self, timeout: float | None) -> None:
        event = self._changed
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def _sleep(self, delay: float) -> None:
        """Sleep that ends early when the sandbox stops, so stop() never hangs."""
        try:
            await asyncio.wait_for(self._stopping.wait(), delay)
        except asyncio.TimeoutError:
            pass

    def _queue_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": self._next_update_id, kind: payload}
        self._next_update_id += 1
        self.updates.append(update)
        self._pending.append(update)
        self._notify()
        return update

    def _user_message(self, user: SandboxUser, chat_id: int, text: str,
                      entities: list[dict[str, Any]] | None) -> dict[str, Any]:
        msg: dict[str, Any] = {"message_id": self._new_message_id(chat_id), "from": user.as_json(),
                               "chat": self._chat_json(chat_id), "date": int(time.time()),
                               "text": text}
        if entities:
            msg["entities"] = entities
        return self._queue_update("message", msg)

    _MEDIA_JSON = {
        "voice": lambda f: {"voice": {**f, "duration": 4, "mime_type": "audio/ogg"}},
        "audio": lambda f: {"audio": {**f, "duration": 30}},
        "photo": lambda f: {"photo": [{**f, "width": 640, "height": 480}]},
        "video": lambda f: {"video": {**f, "width": 640, "height": 480, "duration": 5}},
        "document": lambda f: {"document": {**f, "file_name": "scan.pdf", "mime_type": "application/pdf"}},
        "sticker": lambda f: {"sticker": {**f, "width": 512, "height": 512, "is_animated": False,
                                          "is_video": False, "type": "regular"}},
    }

    def _user_media(self, user: SandboxUser, chat_id: int, kind: str, caption: str | None) -> dict[str, Any]:
        if kind not in self._MEDIA_JSON:
            raise ValueError(f"unknown media kind {kind!r}; expected one of {sorted(self._MEDIA_JSON)}")
        message_id = self._new_message_id(chat_id)
        file = {"file_id": f"USR{chat_id}_{message_id}", "file_unique_id": f"uUSR{chat_id}_{message_id}"}
        msg: dict[str, Any] = {"message_id": message_id, "from": user.as_json(), "chat": self._chat_json(chat_id),
                               "date": int(time.time()), **self._MEDIA_JSON[kind](file)}
        if caption:
            msg["caption"] = caption
        self.user_messages[(chat_id, message_id)] = (kind, caption)
        return self._queue_update("message", msg)

    def _user_callback(self, user: SandboxUser, message: SentMessage, data: str) -> dict[str, Any]:
        query_id = str(4_000_000_000_000 + len(self._callbacks) + 1)
        query = {"id": query_id, "from": user.as_json(), "message": self._message_json(message),
                 "chat_instance": str(abs(message.chat_id) * 7919 + self.bot_id), "data": data}
        self._callbacks[query_id] = query
        return self._queue_update("callback_query", query)

    def _new_message_id(self, chat_id: int) -> int:
        """Private chats share one id sequence between the user's and the bot's messages."""
        self._next_message_id[chat_id] = self._next_message_id.get(chat_id, 0) + 1
        return self._next_message_id[chat_id]

    def _bot_json(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Sandbox Bot",
                "username": self.bot_username}

    def _chat_json(self, chat_id: int) -> dict[str, Any]:
        if chat_id < 0:
            return {"id": chat_id, "type": "supergroup", "title": f"Sandbox group {chat_id}"}
        user = self._users.get(chat_id)
        return {"id": chat_id, "type": "private", "first_name": user.first_name if user else "Test"}

    def _message_json(self, msg: SentMessage) -> dict[str, Any]:
        return msg.to_json(self._bot_json(), self._chat_json(msg.chat_id))

    # --- HTTP layer ----------------------------------------------------------------------------
    async def _read_params(self, request: web.Request) -> tuple[dict[str, Any],
                                                                dict[str, tuple[str, bytes, str]]]:
        raw: dict[str, Any] = dict(request.query)
        files: dict[str, tuple[str, bytes, str]] = {}
        if request.content_type == "application/json":
            raw.update(await request.json())
        elif request.can_read_body:
            for key, value in (await request.post()).items():
                if isinstance(value, web.FileField):
                    files[key] = (value.filename, value.file.read(), value.content_type)
                else:
                    raw[key] = value
        params = {}
        for key, value in raw.items():
            if isinstance(value, str) and key not in _RAW_PARAMS:
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            params[key] = value
        return params, files

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        params, files = await self._read_params(request)
        method, handler = self._handlers.get(request.match_info["method"].lower(),
                                             (request.match_info["method"], None))
        chat_id = params.get("chat_id") if isinstance(params.get("chat_id"), int) else None
        call = RecordedCall(method, params, chat_id, time.monotonic(),
                            files={k: (f[0], f[1]) for k, f in files.items()})
        self.calls.append(call)
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            fault = self._take_fault(method, chat_id)
            if fault and fault.kind != "timeout_after_accept" and fault.delay > 0:
                await self._sleep(fault.delay)
            if fault and fault.kind == "refuse":
                if transport is not None:
                    transport.close()
                self._notify()
                return web.Response(status=500)  # never reaches the client
            if fault and fault.kind == "flood":
                raise ApiError(429, f"Too Many Requests: retry after {fault.retry_after}",
                               {"retry_after": fault.retry_after})
            if fault and fault.kind in _FAULT_ERRORS:
                raise ApiError(*_FAULT_ERRORS[fault.kind])
            if method in _SEND_METHODS:
                self._check_flood(chat_id)
            result = await handler(params, files)
            if method in _SEND_METHODS:
                self._record_send(chat_id)
        except ApiError as err:
            call.status, call.description = err.status, err.description
            self.too_many_requests_count += err.status == 429
            self._notify()
            body: dict[str, Any] = {"ok": False, "error_code": err.status,
                                    "description": err.description}
            if err.parameters:
                body["parameters"] = err.parameters
            return web.json_response(body, status=err.status)
        call.status = 200
        self._notify()
        if fault and fault.kind == "timeout_after_accept":
            await self._sleep(fault.delay)
        return web.json_response({"ok": True, "result": result})

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            raise web.HTTPUnauthorized()
        for stored in self._files.values():
            if stored.path == request.match_info["path"]:
                return web.Response(body=stored.data,
                                    content_type=stored.mime or "application/octet-stream")
        raise web.HTTPNotFound()

    def _take_fault(self, method: str, chat_id: int | None) -> Fault | None:
        for fault in self._faults:
            if fault.method is not None and fault.method.lower() != method.lower():
                continue
            if (fault.chat_id is not None and fault.chat_id != chat_id) or (
                    fault.method is None and chat_id is None):
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
            return fault
        return None

    def _check_flood(self, chat_id: int | None) -> None:
        now = time.monotonic()
        windows = [(self._sends, self.global_per_second)]
        if chat_id is not None:
            chat_window = self._chat_sends.setdefault(chat_id, deque())
            windows.append((chat_window, self.per_chat_per_second))
        for window, _ in windows:
            while window and window[0] <= now - 1.0:
                window.popleft()
        if not self.enforce_limits:
            return
        for window, limit in windows:
            if len(window) >= limit:
                retry = max(1, math.ceil(window[0] + 1.0 - now))
                raise ApiError(429, f"Too Many Requests: retry after {retry}",
                               {"retry_after": retry})

    def _record_send(self, chat_id: int | None) -> None:
        now = time.monotonic()
        self._sends.append(now)
        if chat_id is not None:
            self._chat_sends.setdefault(chat_id, deque()).append(now)

    async def _webhook_worker(self) -> None:
        """Deliver queued updates in order, retrying a failing webhook like Telegram does."""
        while not self._stopping.is_set():
            hook = self.webhook
            if not hook or not self._pending or self._http is None:
                await self._wait_change(None)
                continue
            update = self._pending[0]
            headers = {"X-Telegram-Bot-Api-Secret-Token": hook["secret_token"]} \
                if hook.get("secret_token") else {}
            try:
                async with self._http.post(hook["url"], json=update, headers=headers,
                                           timeout=aiohttp.ClientTimeout(total=10)) as resp:
                    error = None if 200 <= resp.status < 300 else \
                        f"Wrong response from the webhook: {resp.status} {resp.reason}"
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                error = f"Connection failed: {exc!r}"
            if error is None:
                if self._pending and self._pending[0] is update:
                    self._pending.pop(0)
                self._notify()
            else:
                self.webhook_errors.append(error)
                hook["last_error_date"], hook["last_error_message"] = int(time.time()), error
                await self._sleep(0.2)

    # --- helpers for method handlers ---------------------------------------------------------
    def _store(self, chat_id: int, kind: str, text: str | None, params: dict[str, Any],
               **media: Any) -> dict[str, Any]:
        msg = SentMessage(message_id=self._new_message_id(chat_id), chat_id=chat_id, kind=kind,
                          text=text, reply_markup=check_markup(params),
                          protect_content=bool(params.get("protect_content")),
                          parse_mode=params.get("parse_mode"),
                          disable_notification=bool(params.get("disable_notification")),
                          entities=params.get("entities") or params.get("caption_entities"),
                          **media)
        self._chats.setdefault(chat_id, []).append(msg)
        self.sent.append(msg)
        return self._message_json(msg)

    def _find(self, params: dict[str, Any], verb: str = "edit") -> SentMessage:
        if params.get("inline_message_id"):
            raise ApiError(400, "Bad Request: inline messages are not supported by the sandbox")
        chat_id, message_id = require_chat(params), params.get("message_id")
        for msg in self._chats.get(chat_id, []):
            if msg.message_id == message_id and not msg.deleted:
                return msg
        raise ApiError(400, f"Bad Request: message to {verb} not found")

    def _edit(self, msg: SentMessage, params: dict[str, Any],
              text_field: str | None) -> dict[str, Any]:
        """Apply an edit; like Telegram, an edit without reply_markup removes the keyboard."""
        text, parse_mode, entities = msg.text, msg.parse_mode, msg.entities
        if text_field is not None:
            text, parse_mode = params.get(text_field), params.get("parse_mode")
            entities = params.get("entities") or params.get("caption_entities")
        markup = check_markup(params)
        if (render(text, parse_mode, entities), markup) == (
                render(msg.text, msg.parse_mode, msg.entities), msg.reply_markup):
            raise ApiError(400, _NOT_MODIFIED)
        msg.history.append((msg.text, msg.reply_markup))
        msg.text, msg.parse_mode, msg.entities = text, parse_mode, entities
        msg.reply_markup = markup
        msg.edit_date = int(time.time())
        return self._message_json(msg)

    def _upload(self, field: str, params: dict[str, Any],
                files: dict[str, tuple[str, bytes, str]]) -> dict[str, Any]:
        """Keep uploaded bytes under a new file_id; re-sending by file_id reuses them."""
        if field in files:
            filename, data, mime = files[field]
            file_id = f"SBX{len(self._files) + 1:06d}"
            path = f"{field}s/file_{len(self._files) + 1}{PurePosixPath(filename).suffix}"
            self._files[file_id] = StoredFile(data, path, mime, filename)
        elif isinstance(params.get(field), str) and params[field] in self._files:
            file_id = params[field]
        elif str(params.get(field, "")).startswith(("http://", "https://")):
            return {"filename": params[field].rsplit("/", 1)[-1],
                    "file_id": f"SBXURL{len(self.sent)}"}
        else:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        stored = self._files[file_id]
        return {"file_bytes": stored.data, "filename": stored.filename, "mime_type": stored.mime,
                "file_id": file_id}

    # --- Bot API methods (name after "_m_" is the method; lookup is case-insensitive) --------
    async def _ok(self, p: dict[str, Any], f: Any) -> bool:
        return True

    async def _m_getMe(self, p: dict[str, Any], f: Any) -> dict[str, Any]:
        return {**self._bot_json(), "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False, "can_connect_to_business": False,
                "has_main_web_app": False}

    async def _m_getUpdates(self, p: dict[str, Any], f: Any) -> list[dict[str, Any]]:
        if self.webhook:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        offset, limit = int(p.get("offset") or 0), min(max(int(p.get("limit") or 100), 1), 100)
        if offset > 0:
            self._pending = [u for u in self._pending if u["update_id"] >= offset]
        elif offset < 0:
            self._pending = self._pending[offset:]
        deadline = time.monotonic() + float(p.get("timeout") or 0)
        while not self._pending and not self._stopping.is_set() and time.monotonic() < deadline:
            await self._wait_change(deadline - time.monotonic())
        return self._pending[:limit]

    async def _m_setWebhook(self, p: dict[str, Any], f: Any) -> bool:
        if not p.get("url"):
            return await self._m_deleteWebhook(p, f)
        if p.get("secret_token") and not _SECRET_RE.match(p["secret_token"]):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        if p.get("drop_pending_updates"):
            self._pending.clear()
        self.webhook = {"url": p["url"], "secret_token": p.get("secret_token"),
                        "max_connections": p.get("max_connections", 40),
                        "allowed_updates": p.get("allowed_updates")}
        self._notify()
        return True

    async def _m_deleteWebhook(self, p: dict[str, Any], f: Any) -> bool:
        self.webhook = None
        if p.get("drop_pending_updates"):
            self._pending.clear()
        return True

    async def _m_getWebhookInfo(self, p: dict[str, Any], f: Any) -> dict[str, Any]:
        hook = self.webhook or {}
        info = {"url": hook.get("url", ""), "has_custom_certificate": False,
                "pending_update_count": len(self._pending)}
        for key in ("max_connections", "allowed_updates", "last_error_date", "last_error_message"):
            if hook.get(key) is not None:
                info[key] = hook[key]
        return info

    async def _m_setMyCommands(self, p: dict[str, Any], f: Any) -> bool:
        commands = p.get("commands") or []
        for cmd in commands:
            if not _COMMAND_RE.match(str(cmd.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(cmd.get("description") or "") <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[self._commands_key(p)] = list(commands)
        return True

    async def _m_getMyCommands(self, p: dict[str, Any], f: Any) -> list[dict[str, Any]]:
        return self.commands.get(self._commands_key(p), [])

    async def _m_deleteMyCommands(self, p: dict[str, Any], f: Any) -> bool:
        self.commands.pop(self._commands_key(p), None)
        return True

    @staticmethod
    def _commands_key(p: dict[str, Any]) -> tuple[str, str]:
        scope = p.get("scope") or {}
        kind = scope.get("type", "default")
        if "chat_id" in scope:  # chat scopes are per chat ("chat:42")
            kind = f"{kind}:{scope['chat_id']}"
        return (kind, p.get("language_code") or "")

    async def _m_sendMessage(self, p: dict[str, Any], f: Any) -> dict[str, Any]:
        chat_id = require_chat(p)
        check_text(p.get("text"), p)
        return self._store(chat_id, "text", p.get("text"), p)

    async def _m_sendPhoto(self, p: dict[str, Any], f: Any) -> dict[str, Any]:
        chat_id = require_chat(p)
        check_text(p.get("caption"), p, caption=True)
        return self._store(chat_id, "photo", p.get("caption"), p, **self._upload("photo", p, f))

    async def _m_sendDocument(self, p: dict[str, Any], f: Any) -> dict[str, Any]:
        chat_id = require_chat(p)
        check_text(p.get("caption"), p, caption=True)
        return self._store(chat_id, "document", p.get("caption"), p,
                           **self._upload("document", p, f))

    async def _m_editMessageText(self, p: dict[str, Any], f: Any) -> dict[str, Any]:
        msg = self._find(p)
        if msg.kind != "text":
            raise ApiError(400, "Bad Request: there is no text in the message to edit")
        check_text(p.get("text"), p)
        return self._edit(msg, p, "text")

    async def _m_editMessageCaption(self, p: dict[str, Any], f: Any) -> dict[str, Any]:
        msg = self._find(p)
        if msg.kind == "text":
            raise ApiError(400, "Bad Request: there is no caption in the message to edit")
        check_text(p.get("caption"), p, caption=True)
        return self._edit(msg, p, "caption")

    async def _m_editMessageReplyMarkup(self, p: dict[str, Any], f: Any) -> dict[str, Any]:
        msg = self._find(p)
        return self._edit(msg, p, None)

    async def _m_deleteMessage(self, p: dict[str, Any], f: Any) -> bool:
        self._find(p, "delete").deleted = True
        return True

    async def _m_copyMessage(self, p: dict[str, Any], f: Any) -> dict[str, Any]:
        """Copy a user's media message (recorded by ``send_media``) or one of the bot's own."""
        chat_id = require_chat(p)
        source = (p.get("from_chat_id"), p.get("message_id"))
        if source in self.user_messages:
            kind, caption = self.user_messages[source]
        else:
            original = self._find({"chat_id": source[0], "message_id": source[1]}, "copy")
            kind, caption = original.kind, original.text
        msg = SentMessage(message_id=self._new_message_id(chat_id), chat_id=chat_id, kind=kind,
                          text=p.get("caption", caption), reply_markup=check_markup(p),
                          protect_content=bool(p.get("protect_content")))
        self._chats.setdefault(chat_id, []).append(msg)
        self.sent.append(msg)
        return {"message_id": msg.message_id}

    async def _m_answerCallbackQuery(self, p: dict[str, Any], f: Any) -> bool:
        if p.get("callback_query_id") not in self._callbacks:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired or "
                                "query ID is invalid")
        self.callback_answers.append(p)
        return True

    async def _m_sendChatAction(self, p: dict[str, Any], f: Any) -> bool:
        require_chat(p)
        return True

    async def _m_getFile(self, p: dict[str, Any], f: Any) -> dict[str, Any]:
        if p.get("file_id") not in self._files:
            raise ApiError(400, "Bad Request: invalid file_id")
        stored = self._files[p["file_id"]]
        return {"file_id": p["file_id"], "file_unique_id": f"u{p['file_id']}",
                "file_size": len(stored.data), "file_path": stored.path}
