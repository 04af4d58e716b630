"""Raising alerts for the study team. Delivery, repeats and escalation run in the scheduler."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.config import Settings, Site, parse_hhmm
from bot.db.models import Alert, Patient
from bot.domain.schedule import local_due_instant
from bot.services.audit import audit
from bot.services.outbox import ALERT_LANE, enqueue

LEVEL_BY_KIND = {
    "emergency_symptom": "emergency",
    "same_day_symptom": "same_day",
    "consecutive_missed": "same_day",
    "unreachable": "same_day",
    "patient_course_start": "info",
    "patient_paused": "info",
    "patient_resumed": "info",
    "new_enrolment": "info",
}


def alert_recipients(site: Site) -> list[int]:
    """The site's alert chat, else each of its coordinators privately."""
    if site.alert_chat_id:
        return [site.alert_chat_id]
    return [c.telegram_id for c in site.coordinators]


def _escalate_at(*, settings: Settings, site: Site, level: str, now: datetime) -> datetime | None:
    if level == "emergency":
        return now + timedelta(minutes=settings.alerts.escalate_after_minutes)
    if level == "same_day":
        day_end = parse_hhmm(settings.alerts.working_day_end)
        local_today = now.astimezone(site.tz).date()
        end = local_due_instant(local_today, day_end, site.tz)
        # Raised after hours: expected by the end of the next working day.
        return end if end > now else local_due_instant(local_today + timedelta(days=1), day_end, site.tz)
    return None


async def raise_alert(
    session: AsyncSession,
    *,
    settings: Settings,
    now: datetime,
    site_id: str,
    kind: str,
    patient: Patient | None = None,
    details: dict[str, Any] | None = None,
    dedupe_key: str | None = None,
    update_id: int | None = None,
) -> Alert | None:
    """Create the alert and queue one copy per recipient in the alert lane, in the caller's
    transaction. An alert with the same dedupe key is raised only once."""
    site = settings.site(site_id)
    level = LEVEL_BY_KIND[kind]
    values = dict(
        site_id=site_id, patient_id=patient.id if patient else None, kind=kind, level=level,
        details={"subject_id": patient.subject_id if patient else None, **(details or {})},
        dedupe_key=dedupe_key, created_at=now, repeats=0,
        escalate_at=_escalate_at(settings=settings, site=site, level=level, now=now),
        next_repeat_at=now + timedelta(minutes=settings.alerts.repeat_minutes) if level == "emergency" else None,
    )
    if dedupe_key:
        insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
        result = await session.exec(insert(Alert).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"]))
        if not result.rowcount:
            return None
        alert = (await session.exec(select(Alert).where(Alert.dedupe_key == dedupe_key))).one()
    else:
        alert = Alert(**values)
        session.add(alert)
        await session.flush()
    for chat_id in alert_recipients(site):
        await enqueue(session, kind="alert", lane=ALERT_LANE, chat_id=chat_id, due_at=now, now=now,
                      patient_id=alert.patient_id, alert_id=alert.id, payload={"round": 0},
                      dedupe_key=f"alert:{alert.id}:{chat_id}:0")
    audit(session, at=now, actor_kind="system", actor_id="bot", action="alert.raised", entity="alert",
          entity_id=alert.id, after={"kind": kind, "level": level, "subject_id": alert.details.get("subject_id")},
          update_id=update_id)
    return alert
