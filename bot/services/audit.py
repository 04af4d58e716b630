"""The append-only audit trail: one row per state change (ALCOA+)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db.models import AuditLog


def audit(
    session: AsyncSession,
    *,
    at: datetime,
    actor_kind: str,
    actor_id: str | int,
    action: str,
    entity: str | None = None,
    entity_id: str | int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
    update_id: int | None = None,
) -> AuditLog:
    """Add an audit row to the caller's transaction, so it commits (or not) with the change.
    It is hash-chained when the transaction commits (bot.db.audit_chain)."""
    row = AuditLog(
        at=at,
        actor_kind=actor_kind,
        actor_id=str(actor_id),
        action=action,
        entity=entity,
        entity_id=None if entity_id is None else str(entity_id),
        before=before,
        after=after,
        reason=reason,
        update_id=update_id,
    )
    session.add(row)
    return row
