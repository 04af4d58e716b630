"""The append-only audit trail: one row per state change (ALCOA+)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.channels.port import Account
from bot.db.models import AuditLog


def audit(
    session: AsyncSession,
    *,
    at: datetime,
    actor_kind: str,
    actor_id: str | int | Account,
    action: str,
    entity: str | None = None,
    entity_id: str | int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
    update_id: int | None = None,
) -> AuditLog:
    """Add an audit row to the caller's transaction, so it commits (or not) with the change.
    It is hash-chained when the transaction commits (bot.db.audit_chain). A person acting
    through a channel is named by their account key ("<channel>:<id on it>")."""
    row = AuditLog(
        at=at,
        actor_kind=actor_kind,
        actor_id=actor_id.key if isinstance(actor_id, Account) else str(actor_id),
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
