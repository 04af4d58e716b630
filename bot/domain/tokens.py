"""Enrolment invitation tokens and the rules around them.

A token travels in a chat app's deep link (`/start <token>`: at most 64 characters of
[A-Za-z0-9_-]). Only its SHA-256 hash is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.domain._time import as_utc

MIN_TOKEN_BYTES = 16  # 128 bits of entropy
# 64 URL-safe base64 characters: Telegram's deep-link payload limit.
MAX_TOKEN_BYTES = 48
DEFAULT_TOKEN_BYTES = 24

# Anchored so that .match, .search and .fullmatch all check the whole text.
TOKEN_PATTERN = re.compile(r"\A[A-Za-z0-9_-]{22,64}\Z")


def new_token(nbytes: int = DEFAULT_TOKEN_BYTES) -> str:
    if not MIN_TOKEN_BYTES <= nbytes <= MAX_TOKEN_BYTES:
        raise ValueError(f"token size must be {MIN_TOKEN_BYTES}..{MAX_TOKEN_BYTES} bytes, got {nbytes}")
    return secrets.token_urlsafe(nbytes)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def looks_like_token(text: object) -> bool:
    """Format check only; says nothing about whether the token was ever issued."""
    return isinstance(text, str) and TOKEN_PATTERN.match(text) is not None


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token).encode("ascii"), stored_hash.lower().encode("utf-8"))


class InvitationStatus(StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    USED = "used"
    REVOKED = "revoked"


def invitation_status(
    *, expires_at: datetime, used_at: datetime | None, revoked_at: datetime | None, now: datetime
) -> InvitationStatus:
    """Revoked beats used beats expired: the most deliberate fact is the one reported."""
    expires_at = as_utc(expires_at, "expires_at")
    now = as_utc(now, "now")
    if revoked_at is not None:
        as_utc(revoked_at, "revoked_at")
        return InvitationStatus.REVOKED
    if used_at is not None:
        as_utc(used_at, "used_at")
        return InvitationStatus.USED
    if now >= expires_at:
        return InvitationStatus.EXPIRED
    return InvitationStatus.VALID


DEFAULT_FAILURE_LIMIT = 5
DEFAULT_FAILURE_WINDOW = timedelta(hours=1)


def throttle_allows(
    failure_times: Sequence[datetime],
    *,
    now: datetime,
    limit: int = DEFAULT_FAILURE_LIMIT,
    window: timedelta = DEFAULT_FAILURE_WINDOW,
) -> bool:
    """Sliding window: allow another attempt while fewer than `limit` failures fall in the last
    `window`. Failures stamped after `now` (clock skew) count against the caller."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if window <= timedelta(0):
        raise ValueError(f"window must be positive, got {window}")
    now = as_utc(now, "now")
    since = now - window
    recent = sum(1 for at in failure_times if as_utc(at, "failure time") > since)
    return recent < limit


@dataclass(frozen=True)
class Throttle:
    limit: int = DEFAULT_FAILURE_LIMIT
    window: timedelta = DEFAULT_FAILURE_WINDOW

    def allowed(self, failure_times: Sequence[datetime], *, now: datetime) -> bool:
        return throttle_allows(failure_times, now=now, limit=self.limit, window=self.window)


__all__ = [
    "TOKEN_PATTERN",
    "InvitationStatus",
    "Throttle",
    "hash_token",
    "invitation_status",
    "looks_like_token",
    "new_token",
    "throttle_allows",
    "token_matches",
]
