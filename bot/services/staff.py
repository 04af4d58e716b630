"""How people are named outside the database: staff by their configured label, patients by
subject id, anyone else by a keyed hash. Account ids stay in the database (the audit trail must
stay attributable) and never appear in an export or on a message to staff."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from bot.config import Settings
from bot.db.models import RuntimeState

PSEUDONYM_KEY = "export_pseudonym_key"


def staff_label(settings: Settings, who) -> str | None:
    """The configured label of a coordinator (or escalation contact, alert chat), else None: `who`
    is an account, a recipient, an account key, or the bare id older audit rows carry."""
    return settings.staff_label(who)


def keyed_hash(key: bytes, value: int | str) -> str:
    """A stable pseudonym for someone who is neither staff nor patient (a refused stranger)."""
    return "anon-" + hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()[:12]


async def pseudonym_key(session, *, now) -> bytes:
    """The secret behind keyed hashes: created once, kept in the database, never exported."""
    row = await session.get(RuntimeState, PSEUDONYM_KEY)
    if row is None:
        row = RuntimeState(key=PSEUDONYM_KEY, value=secrets.token_hex(32), updated_at=now)
        session.add(row)
        await session.flush()
    return bytes.fromhex(row.value)


__all__ = ["keyed_hash", "pseudonym_key", "staff_label"]
