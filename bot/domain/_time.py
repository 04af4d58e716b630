"""Instant helpers shared by the domain modules (no clock is ever read here)."""

from __future__ import annotations

from datetime import datetime, timezone


def require_aware(value: datetime, name: str) -> datetime:
    """Refuse naive datetimes where an instant is expected; a naive value has no meaning."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (got naive {value.isoformat()})")
    return value


def as_utc(value: datetime, name: str) -> datetime:
    return require_aware(value, name).astimezone(timezone.utc)

