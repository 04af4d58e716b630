"""The audit trail's hash chain and the rate limit on strangers' rows.

Every audit row stores `prev_hash` (the previous row's hash) and `hash` = SHA-256 of the previous
hash and the row's content in a canonical form. Editing, deleting or inserting a row in the
middle breaks the chain at that row, which `adherence-bot verify-audit` reports.

Rows are chained when their transaction commits: `bot.services.audit.audit()` only adds the row to
the session; a `before_flush` hook holds audit rows back, and a `before_commit` hook flushes the
other changes, locks the one `audit_head` row (PostgreSQL row lock; SQLite write lock), reads the
last hash, and inserts the held rows chained to it. Taking the lock last, with nothing but the
audit inserts after it, means writers queue for a moment but can never deadlock on it.

Rows caused by unauthenticated Telegram users (actor_kind "user") for the actions in
STRANGER_ACTIONS are counted in `stranger_attempt`; past STRANGER_ROWS_PER_DAY a day per id and
action, one `audit.rate_limited` row is written and then only the counter moves.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from bot.db.models import AuditHead, AuditLog, StrangerAttempt

STRANGER_ACTIONS = frozenset({"enrol.throttled", "access.refused", "callback.rejected"})
STRANGER_ROWS_PER_DAY = 5
_HELD = "audit_rows_held"
_SEALING = "audit_sealing"


def _instant(value: datetime) -> str:
    if value.tzinfo is None:  # SQLite hands back naive UTC from raw SQL
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def row_hash(prev_hash: str, row) -> str:
    """SHA-256 over the previous hash and the row's content (everything but id and hashes)."""
    content = [  # as the database hands them back (ids are stored as text)
        _instant(row.at), row.actor_kind, str(row.actor_id), row.action, row.entity,
        None if row.entity_id is None else str(row.entity_id), row.before, row.after, row.reason,
        None if row.update_id is None else int(row.update_id),
    ]
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode("utf-8")).hexdigest()


def _hold_audit_rows(session: Session, _context, _instances) -> None:
    if session.info.get(_SEALING):
        return
    held = [obj for obj in session.new if isinstance(obj, AuditLog)]
    if held:
        for obj in held:
            session.expunge(obj)
        session.info.setdefault(_HELD, []).extend(held)


def _admit_stranger_rows(session: Session, rows: list[AuditLog]) -> list[AuditLog]:
    """Counts strangers' attempts; keeps their rows up to the daily threshold."""
    kept: list[AuditLog] = []
    for row in rows:
        if row.actor_kind != "user" or row.action not in STRANGER_ACTIONS:
            kept.append(row)
            continue
        day = row.at.astimezone(timezone.utc).date()
        key = dict(account=row.actor_id, action=row.action, day=day)
        attempt = session.get(StrangerAttempt, key)
        if attempt is None:
            attempt = StrangerAttempt(**key, count=0, last_at=row.at)
            session.add(attempt)
        attempt.count += 1
        attempt.last_at = max(attempt.last_at, row.at)
        if attempt.count <= STRANGER_ROWS_PER_DAY:
            kept.append(row)
        elif attempt.count == STRANGER_ROWS_PER_DAY + 1:
            kept.append(AuditLog(at=row.at, actor_kind=row.actor_kind, actor_id=row.actor_id,
                                 action="audit.rate_limited", entity="stranger_attempt", entity_id=row.action,
                                 reason=f"more than {STRANGER_ROWS_PER_DAY} {row.action} today; "
                                        "further attempts are counted in stranger_attempt"))
    return kept


def _seal(session: Session) -> None:
    if session.info.get(_SEALING):
        return
    if any(isinstance(obj, AuditLog) for obj in session.new):
        session.flush()  # everything else in the transaction first; audit rows are held back
    held: list[AuditLog] = session.info.pop(_HELD, [])
    if not held:
        return
    session.info[_SEALING] = True
    try:
        # The lock: a row lock on PostgreSQL, the database write lock on SQLite. Everything that
        # reads before it writes (the strangers' counters, the last hash) comes after it.
        session.execute(update(AuditHead).where(AuditHead.id == 1).values(sealed=AuditHead.sealed + 1))
        rows = _admit_stranger_rows(session, held)
        previous = session.execute(select(AuditLog.hash).order_by(AuditLog.id.desc()).limit(1)).scalar()
        previous = previous or ""
        for row in rows:
            row.prev_hash = previous
            row.hash = previous = row_hash(previous, row)
            session.add(row)
        session.flush()
    finally:
        session.info.pop(_SEALING, None)


def _forget(session: Session, *_args) -> None:
    session.info.pop(_HELD, None)


def install() -> None:
    """Register the hooks on every ORM session (idempotent)."""
    if not event.contains(Session, "before_flush", _hold_audit_rows):
        event.listen(Session, "before_flush", _hold_audit_rows)
        event.listen(Session, "before_commit", _seal)
        event.listen(Session, "after_rollback", _forget)
        event.listen(Session, "after_soft_rollback", _forget)


@dataclass(frozen=True)
class Verification:
    rows: int
    head: str
    broken_at: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


async def verify(engine, *, batch: int = 5000) -> Verification:
    """Read the whole trail in id order, in batches, and verify the chain."""
    from sqlalchemy.ext.asyncio import AsyncSession

    async def rows():
        last = 0
        async with AsyncSession(engine) as session:
            while True:
                chunk = (await session.execute(select(AuditLog).where(AuditLog.id > last)
                                               .order_by(AuditLog.id).limit(batch))).scalars().all()
                if not chunk:
                    return
                for row in chunk:
                    yield row
                last = chunk[-1].id
                session.expunge_all()

    previous, count = "", 0
    async for row in rows():
        result = _broken_link(previous, row)
        count += 1
        if result:
            return Verification(count, previous, row.id, result)
        previous = row.hash
    return Verification(count, previous)


def _broken_link(previous: str, row) -> str | None:
    if row.prev_hash != previous:
        return (f"row {row.id}: prev_hash does not match the hash of the row before it "
                "(a row was deleted, inserted or re-ordered)")
    if row.hash != row_hash(previous, row):
        return f"row {row.id}: content does not match its hash (the row was edited)"
    return None
