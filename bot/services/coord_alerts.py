"""Open alerts for a coordinator, and the extra copies /alerts shows (so acknowledgement edits them too)."""

from __future__ import annotations

from sqlmodel import col, select

from bot.channels.port import Recipient
from bot.db.models import Alert, AlertMessage
from bot.services.alerts import needs_action
from bot.services.coord_access import Actor
from bot.services.runtime import Runtime


async def open_alerts(rt: Runtime, actor: Actor, *, site_id: str | None = None) -> list[Alert]:
    async with rt.session() as session:
        rows = (await session.exec(select(Alert).where(col(Alert.acknowledged_at).is_(None), needs_action())
                                   .order_by(col(Alert.created_at), col(Alert.id)))).all()
    return [a for a in rows if actor.may(a.site_id) and (site_id is None or a.site_id == site_id)]


async def record_copy(rt: Runtime, *, alert_id: int, to: Recipient, message_id: int) -> None:
    async with rt.session() as session:
        session.add(AlertMessage(alert_id=alert_id, channel=to.channel, address=to.address,
                                 message_id=message_id, sent_at=rt.now()))
        await session.commit()
