"""The channel port: who a message is for, what it says, and what became of it.

Everything here is channel-neutral. An adapter turns an `OutgoingMessage` into its own wire
format and answers with one `DeliveryResult`, which the courier maps onto the outbox policy
(DESIGN.md §3, at-least-once-safe):

- `Sent`: the channel accepted it (with its message id where it has one).
- `Refused`: the recipient is gone for good (blocked, deactivated, mailbox does not exist).
- `Unknown`: the request may have been accepted but no answer came back: never resent blindly.
- `RetryAfter`: the channel asked us to wait; does not count as an attempt.
- `NotDelivered`: certainly not delivered (connection refused, temporary failure): retry later.
- `Rejected`: the channel refused what we sent (a bug on our side): failed, logged as an error.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class ChannelName(StrEnum):
    TELEGRAM = "telegram"
    EMAIL = "email"


# Channels whose sent messages the bot can edit later (a mail cannot be changed once sent), and
# those that can relay a person's own message (a voice note, a photo) to someone else.
EDITABLE_CHANNELS = frozenset({ChannelName.TELEGRAM})
RELAYING_CHANNELS = frozenset({ChannelName.TELEGRAM})


@dataclass(frozen=True)
class Account:
    """A person on a channel: who wrote to the bot (a `Recipient` is where the bot writes). The
    database and the audit trail name them by `key`, e.g. "telegram:42"."""

    channel: str
    id: str

    @property
    def key(self) -> str:
        return f"{self.channel}:{self.id}"

    @classmethod
    def parse(cls, key: str) -> Account:
        channel, _, account_id = key.partition(":")
        if not channel or not account_id:
            raise ValueError(f"not an account key: {key!r}")
        return cls(channel, account_id)

    @classmethod
    def telegram(cls, user_id: int) -> Account:
        return cls(ChannelName.TELEGRAM, str(user_id))

    @property
    def user_id(self) -> int | None:
        """The Telegram user id, for the Telegram adapter."""
        return int(self.id) if self.channel == ChannelName.TELEGRAM else None


@dataclass(frozen=True)
class Recipient:
    channel: str
    address: str

    @classmethod
    def telegram(cls, chat_id: int) -> Recipient:
        return cls(ChannelName.TELEGRAM, str(chat_id))

    @classmethod
    def email(cls, address: str) -> Recipient:
        return cls(ChannelName.EMAIL, address)

    @property
    def short_key(self) -> str:
        """A short stable key for dedupe keys: a chat id as it is, any other address (a mail
        address may be long) hashed."""
        if self.channel == ChannelName.TELEGRAM:
            return self.address
        return self.channel[0] + hashlib.sha256(self.address.encode()).hexdigest()[:16]

    @property
    def chat_id(self) -> int | None:
        """The Telegram chat id, for the Telegram adapter."""
        return int(self.address) if self.channel == ChannelName.TELEGRAM else None


@dataclass(frozen=True)
class Action:
    """One button: a label and either data handed back to the bot when tapped, or a link."""

    label: str
    data: str | None = None
    url: str | None = None


Actions = tuple[tuple[Action, ...], ...]  # rows of buttons under one message


@dataclass(frozen=True)
class Menu:
    """A standing menu of big labelled buttons under the text box; tapping one sends its label
    as the person's own message (Telegram: a persistent reply keyboard)."""

    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class OutgoingMessage:
    text: str
    actions: Actions = ()
    protected: bool = False  # the channel should not let it be forwarded or saved
    silent: bool = False
    edit_of: int | None = None  # replace an earlier message of ours in the same conversation
    copy_of: tuple[str, int] | None = None  # (address, message id) of the recipient's own message to relay
    subject: str | None = None  # channels with a subject line (email)


@dataclass(frozen=True)
class Sent:
    message_id: int | None = None


@dataclass(frozen=True)
class Refused:
    reason: str


@dataclass(frozen=True)
class Unknown:
    reason: str


@dataclass(frozen=True)
class RetryAfter:
    seconds: float


@dataclass(frozen=True)
class NotDelivered:
    reason: str


@dataclass(frozen=True)
class Rejected:
    reason: str


DeliveryResult = Sent | Refused | Unknown | RetryAfter | NotDelivered | Rejected


class SendAborted(Exception):
    """The sender gave up before the request was dispatched (shutting down): nothing was sent."""


class AbortTag:
    """Shared by the sends of one drain; `abort()` fails all of them still waiting for a slot."""

    def __init__(self) -> None:
        self.aborted = False
        self.waiting: set[asyncio.Future[None]] = set()

    def abort(self) -> None:
        self.aborted = True
        for future in list(self.waiting):
            if not future.done():
                future.set_exception(SendAborted())


@dataclass
class Dispatch:
    """How one send is to be paced and recorded.

    `urgent` (the alert lane) and `rank` (0 first emergencies, 1 new, 2 repeats) order waiting
    sends; `on_dispatch` must be awaited by the adapter right before the request leaves (it
    records the row as in flight and may raise `SendAborted`); `tag` aborts sends still waiting."""

    urgent: bool = False
    rank: int = 1
    on_dispatch: Callable[[], Awaitable[None]] | None = None
    tag: AbortTag | None = field(default=None)

    async def dispatching(self) -> None:
        if self.on_dispatch is not None:
            await self.on_dispatch()


class Channel(Protocol):
    name: str

    async def deliver(self, recipient: Recipient, message: OutgoingMessage, dispatch: Dispatch) -> DeliveryResult:
        """Send (or edit, or relay) one message. Exceptions raised after `dispatch.on_dispatch`
        are treated as `Unknown` by the courier, before it as `NotDelivered`."""
        ...
