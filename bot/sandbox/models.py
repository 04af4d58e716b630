"""Plain data kept by the Bot API sandbox, plus Telegram's HTML parse-mode rules.

The HTML parser lives here because Telegram itself rejects malformed HTML with
``400 can't parse entities`` and answers with plain text + entities rather than the
markup the bot sent; a sandbox that echoed raw HTML back would hide exactly the
escaping bugs it exists to catch.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # pragma: no cover
    from bot.sandbox.server import BotApiSandbox

FAULT_KINDS = frozenset(
    {"blocked", "deactivated", "chat_not_found", "server_error", "timeout_after_accept", "flood",
     "refuse", "slow"}
)


class SandboxTimeout(AssertionError):
    """A ``wait_for*`` helper gave up; an AssertionError so pytest shows it as a failed check."""


class ApiError(Exception):
    """A Bot API error response (``ok: false``) raised by a method handler."""

    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.status, self.description, self.parameters = status, description, parameters


class StoredFile(NamedTuple):
    """Bytes the bot uploaded, addressable by file_id and downloadable via getFile."""

    data: bytes
    path: str  # file_path as getFile reports it, served under base_file_url
    mime: str | None
    filename: str


@dataclass
class RecordedCall:
    """One HTTP call the bot made, as the sandbox decoded it (``params`` are typed values)."""

    method: str
    params: dict[str, Any]
    chat_id: int | None
    timestamp: float  # time.monotonic() when the request arrived
    status: int = 0  # HTTP status answered; 0 = connection dropped / still in flight
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # field -> (filename, bytes)
    description: str | None = None  # error description for ok:false answers


@dataclass
class Fault:
    """An injected failure; ``times=None`` means it never runs out."""

    kind: str
    chat_id: int | None = None
    method: str | None = None
    times: int | None = 1
    retry_after: int = 1
    delay: float = 0.0


@dataclass
class SentMessage:
    """A message the bot sent, kept current across edits (old versions go to ``history``)."""

    message_id: int
    chat_id: int
    kind: str  # "text" | "photo" | "document" | a copied user message's kind ("voice", "sticker" …)
    text: str | None  # exactly what the bot sent (markup included); caption for media
    reply_markup: dict[str, Any] | None = None
    protect_content: bool = False
    parse_mode: str | None = None
    history: list[tuple[str | None, dict[str, Any] | None]] = field(default_factory=list)
    file_bytes: bytes | None = None
    filename: str | None = None
    mime_type: str | None = None
    file_id: str | None = None
    date: int = field(default_factory=lambda: int(time.time()))
    edit_date: int | None = None
    deleted: bool = False
    disable_notification: bool = False
    entities: list[dict[str, Any]] | None = None  # explicit entities param (no parse_mode)

    def to_json(self, sender: dict[str, Any], chat: dict[str, Any]) -> dict[str, Any]:
        """The Telegram Message object for this message, as PTB's de_json expects it."""
        data: dict[str, Any] = {"message_id": self.message_id, "from": sender, "chat": chat,
                                "date": self.date}
        text, entities = render(self.text, self.parse_mode, self.entities)
        if text is not None:
            data["text" if self.kind == "text" else "caption"] = text
        if entities:
            data["entities" if self.kind == "text" else "caption_entities"] = entities
        file = {"file_id": self.file_id, "file_unique_id": f"u{self.file_id}",
                "file_size": len(self.file_bytes or b"")}
        if self.kind == "photo":
            data["photo"] = [{**file, "width": 320, "height": 320}]
        elif self.kind == "document":
            data["document"] = {**file, "file_name": self.filename, "mime_type": self.mime_type}
        if self.edit_date:
            data["edit_date"] = self.edit_date
        if self.protect_content:
            data["has_protected_content"] = True
        if self.reply_markup and "inline_keyboard" in self.reply_markup:
            data["reply_markup"] = self.reply_markup  # reply keyboards are never echoed back
        return data

    @property
    def buttons(self) -> list[tuple[str, str | None]]:
        """(text, callback_data) of the current inline keyboard, row by row; [] if none."""
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [(b.get("text", ""), b.get("callback_data")) for row in rows for b in row]

    @property
    def button_texts(self) -> list[str]:
        return [text for text, _ in self.buttons]

    @property
    def plain_text(self) -> str | None:
        """The text as the user sees it (HTML tags removed, entities decoded)."""
        return render(self.text, self.parse_mode, self.entities)[0]


class SandboxUser:
    """A handle for acting as one Telegram user; all state lives in the sandbox."""

    def __init__(self, sandbox: BotApiSandbox, user_id: int, *, language_code: str | None,
                 first_name: str, last_name: str | None = None, username: str | None = None):
        self.sandbox, self.user_id = sandbox, user_id
        self.language_code, self.first_name = language_code, first_name
        self.last_name, self.username = last_name, username

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.user_id, "is_bot": False, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data

    def send_text(self, text: str, *, chat_id: int | None = None,
                  entities: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Queue a text message from this user (to its private chat unless ``chat_id``)."""
        return self.sandbox._user_message(self, chat_id or self.user_id, text, entities)

    def send_media(self, kind: str, *, caption: str | None = None, chat_id: int | None = None) -> dict[str, Any]:
        """Queue a voice note, photo, document, sticker, video or audio message from this user."""
        return self.sandbox._user_media(self, chat_id or self.user_id, kind, caption)

    def send_command(self, command: str, payload: str | None = None, *,
                     chat_id: int | None = None) -> dict[str, Any]:
        """Queue ``/command payload`` with the bot_command entity Telegram would attach."""
        command = command if command.startswith("/") else f"/{command}"
        text = f"{command} {payload}" if payload else command
        entity = {"type": "bot_command", "offset": 0, "length": utf16_len(command)}
        return self.send_text(text, chat_id=chat_id, entities=[entity])

    def press(self, message: SentMessage, callback_data: str) -> dict[str, Any]:
        """Queue a callback_query for ``message``; any data is allowed (to test forged data)."""
        if message.deleted:
            raise AssertionError(
                f"message {message.message_id} in chat {message.chat_id} is deleted")
        return self.sandbox._user_callback(self, message, callback_data)

    def press_button(self, text: str, message: SentMessage | None = None) -> dict[str, Any]:
        """Press the inline button labelled ``text`` (on ``message`` or the latest keyboard)."""
        if message is None:
            keyboards = [m for m in self.messages if m.buttons and not m.deleted]
            if not keyboards:
                raise AssertionError(f"no message with an inline keyboard in chat {self.user_id}; "
                                     f"messages: {[m.plain_text for m in self.messages]}")
            message = keyboards[-1]
        for label, data in message.buttons:
            if label == text:
                if data is None:
                    raise AssertionError(f"button {text!r} has no callback_data (URL button?)")
                return self.press(message, data)
        raise AssertionError(f"no button {text!r} on message {message.message_id} "
                             f"({message.plain_text!r}); available: {message.button_texts}")

    @property
    def messages(self) -> list[SentMessage]:
        return self.sandbox.messages(self.user_id)

    @property
    def last_message(self) -> SentMessage:
        """The bot's latest message in this private chat (AssertionError if there is none)."""
        msgs = self.messages
        if not msgs:
            raise AssertionError(f"the bot has sent nothing to chat {self.user_id}")
        return msgs[-1]


# --- Telegram's validation of what the bot sends ---------------------------------------

def require_chat(params: dict[str, Any]) -> int:
    chat_id = params.get("chat_id")
    if chat_id is None or chat_id == "":
        raise ApiError(400, "Bad Request: chat_id is empty")
    if not isinstance(chat_id, int):
        raise ApiError(400, "Bad Request: chat not found")  # @usernames are not modelled
    return chat_id


def check_markup(params: dict[str, Any]) -> dict[str, Any] | None:
    """Validate an inline keyboard the way Telegram does (catches >64-byte callback_data)."""
    markup = params.get("reply_markup")
    if markup is not None and not isinstance(markup, dict):
        raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    for row in (markup or {}).get("inline_keyboard", []):
        for button in row:
            if not button.get("text"):
                raise ApiError(400, "Bad Request: text buttons are unallowed in the inline "
                                    "keyboard")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    return markup


def check_text(text: str | None, params: dict[str, Any], *, caption: bool = False) -> None:
    """Reject what Telegram rejects: bad HTML, over-long text/caption, empty text."""
    try:
        plain, _ = render(text, params.get("parse_mode"), params.get("entities"))
    except EntityParseError as err:
        raise ApiError(400, f"Bad Request: can't parse entities: {err}") from None
    if caption:
        if plain is not None and len(plain) > 1024:
            raise ApiError(400, "Bad Request: message caption is too long")
    elif not (plain or "").strip():
        raise ApiError(400, "Bad Request: message text is empty")
    elif len(plain) > 4096:
        raise ApiError(400, "Bad Request: message is too long")


# --- Telegram HTML parse mode -------------------------------------------------------------

class EntityParseError(ValueError):
    """Raised with Telegram's wording; the caller prefixes "Bad Request: can't parse entities: "."""


_TAG_ENTITY = {"b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
               "ins": "underline", "s": "strikethrough", "strike": "strikethrough",
               "del": "strikethrough", "tg-spoiler": "spoiler", "span": "spoiler", "code": "code",
               "pre": "pre", "blockquote": "blockquote", "a": "text_link",
               "tg-emoji": "custom_emoji"}
_CHAR_REF = re.compile(r"&(?:(lt|gt|amp|quot)|#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6}));")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ATTR = re.compile(r"""\s*([a-zA-Z_-]+)\s*(?:=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?""")


def utf16_len(text: str) -> int:
    """Telegram measures entity offsets/lengths in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def render(text: str | None, parse_mode: str | None,
           entities: list[dict[str, Any]] | None = None) -> tuple[str | None, list[dict[str, Any]]]:
    """What Telegram would store: (plain text, entities). Only HTML markup is interpreted."""
    if text is None:
        return None, []
    if (parse_mode or "").upper() == "HTML":
        return parse_html(text)
    return text, list(entities or [])


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram-flavoured HTML like tdlib does; raise EntityParseError on bad markup."""
    out: list[str] = []
    pos = 0  # UTF-16 offset of the plain text produced so far
    stack: list[tuple[str, dict[str, str], int]] = []
    entities: list[dict[str, Any]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "&":
            m = _CHAR_REF.match(text, i)
            if m:
                ch = _NAMED[m[1]] if m[1] else chr(int(m[2]) if m[2] else int(m[3], 16))
                i = m.end()
            else:
                i += 1  # a lone "&" is kept literally by Telegram
            out.append(ch)
            pos += utf16_len(ch)
            continue
        if ch != "<":
            out.append(ch)
            pos += utf16_len(ch)
            i += 1
            continue
        offset = len(text[:i].encode())
        end = text.find(">", i)
        if end < 0:
            raise EntityParseError(f"Unclosed {'end' if text[i + 1:i + 2] == '/' else 'start'} "
                                   f"tag at byte offset {offset}")
        if text[i + 1:i + 2] == "/":
            name = text[i + 2:end].strip().lower()
            if not stack:
                raise EntityParseError(f"Unexpected end tag at byte offset {offset}")
            tag, attrs, start = stack.pop()
            if name != tag:
                raise EntityParseError(f'Unmatched end tag at byte offset {offset}, expected '
                                       f'"</{tag}>", found "</{name}>"')
            _close_entity(tag, attrs, start, pos, stack, entities)
            i = end + 1
            continue
        j = i + 1
        while j < n and not text[j].isspace() and text[j] not in ">":
            j += 1
        tag = text[i + 1:j].lower()
        if tag not in _TAG_ENTITY:
            raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {offset}')
        attrs = {m[1].lower(): m[2] or m[3] or m[4] or "" for m in _ATTR.finditer(text[j:end])}
        if tag == "span" and attrs.get("class") != "tg-spoiler":
            raise EntityParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {offset}')
        stack.append((tag, attrs, pos))
        i = end + 1
    if stack:
        raise EntityParseError(f"Can't find end tag corresponding to start tag {stack[-1][0]}")
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _close_entity(tag: str, attrs: dict[str, str], start: int, end: int,
                  stack: list[tuple[str, dict[str, str], int]],
                  entities: list[dict[str, Any]]) -> None:
    if end <= start:
        return  # Telegram silently drops empty entities
    entity: dict[str, Any] = {"type": _TAG_ENTITY[tag], "offset": start, "length": end - start}
    if tag == "a":
        if not attrs.get("href"):
            return
        entity["url"] = attrs["href"]
    elif tag == "tg-emoji":
        entity["custom_emoji_id"] = attrs.get("emoji-id", "")
    elif tag == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    elif tag == "code" and stack and stack[-1][0] == "pre" and attrs.get("class", "").startswith(
            "language-"):
        stack[-1][1]["language"] = attrs["class"][len("language-"):]
        return  # folded into the enclosing <pre>, as Telegram does
    elif tag == "pre" and attrs.get("language"):
        entity["language"] = attrs["language"]
    entities.append(entity)
