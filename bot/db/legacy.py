"""How rows written before migration 0010 (accounts) name people, for readers of data that is
never rewritten (the audit trail, whose rows are hash-chained): by a bare Telegram id, under
these JSON keys. Everything written since names a person by an account key ("telegram:42")."""

from __future__ import annotations

CHANNEL = "telegram"  # every id before 0010 is a Telegram id
PERSON_KEYS = frozenset({"telegram_user_id", "used_by_telegram_id", "chat_id", "telegram_id"})


def is_bare_id(value: object) -> bool:
    text = str(value).strip()
    return text.lstrip("-").isdigit()


def account_key(value: object) -> str:
    """The account key a bare id from an old row stands for."""
    return f"{CHANNEL}:{str(value).strip()}"


def bare_id(key: str) -> str | None:
    """The bare id old rows use for this account key (None: not an account older rows can name)."""
    channel, _, account_id = key.partition(":")
    return account_id if channel == CHANNEL else None
