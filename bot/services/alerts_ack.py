"""Acknowledging an alert: who and when, once; stops repeats and escalation."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import update
from sqlmodel import select

from bot.db.models import Alert, AlertMessage
from bot.services.audit import audit
from bot.services.runtime import Runtime


@dataclass
class AckResult:
    status: str  # acknowledged | already | refused
    alert: Alert | None = None
    copies: list[AlertMessage] = field(default_factory=list)


def may_act_on_site(rt: Runtime, telegram_user_id: int, site_id: str) -> bool:
    found = rt.settings_coordinator(telegram_user_id)
    if found is None:
        return is_escalation_contact(rt, telegram_user_id, site_id)
    site, coordinator = found
    return coordinator.role == "admin" or site.id == site_id


def is_escalation_contact(rt: Runtime, telegram_user_id: int, site_id: str) -> bool:
    """The site's escalation contact is paged with the same Acknowledge button as the team, and
    may use it: otherwise an alert no coordinator answers would page everyone forever."""
    return any(site.id == site_id and site.escalation_contact == telegram_user_id for site in rt.settings.sites)


async def acknowledge(rt: Runtime, *, alert_id: int, telegram_user_id: int, update_id: int | None = None) -> AckResult:
    now = rt.now()
    async with rt.session() as session:
        alert = await session.get(Alert, alert_id)
        if alert is None or not may_act_on_site(rt, telegram_user_id, alert.site_id):
            audit(session, at=now, actor_kind="user", actor_id=telegram_user_id, action="access.refused",
                  entity="alert", entity_id=alert_id, reason="acknowledge", update_id=update_id)
            await session.commit()
            return AckResult("refused")
        changed = await session.exec(update(Alert).where(Alert.id == alert_id, Alert.acknowledged_at.is_(None))
                                     .values(acknowledged_at=now, acknowledged_by=telegram_user_id, next_repeat_at=None))
        if changed.rowcount == 1:
            kind = "coordinator" if rt.settings_coordinator(telegram_user_id) else "escalation"
            audit(session, at=now, actor_kind=kind, actor_id=telegram_user_id, action="alert.acknowledged",
                  entity="alert", entity_id=alert_id, update_id=update_id)
        await session.commit()
        alert = await session.get(Alert, alert_id, populate_existing=True)
        copies = list((await session.exec(select(AlertMessage).where(AlertMessage.alert_id == alert_id))).all())
    return AckResult("acknowledged" if changed.rowcount == 1 else "already", alert, copies)
