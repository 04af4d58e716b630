"""Acknowledging an alert: who and when, once; stops repeats and escalation (on every channel:
a repeat or escalation not yet sent is skipped by the courier once the alert is acknowledged).

Copies without a button (email) carry an acknowledgement code (`bot.domain.ack_codes`), keyed by
a secret kept in the database; a staff member sends it to the bot as `/ack CODE`, or an operator
runs `adherence-bot ack CODE` for someone who cannot reach the bot."""

from __future__ import annotations

from dataclasses import dataclass, field

import secrets

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import select

from bot.channels.port import Account, Recipient
from bot.config import Site
from bot.db.models import Alert, AlertMessage, RuntimeState
from bot.domain.ack_codes import ack_code, issued_to, parse
from bot.services.alerts import escalation_recipients, staff_name
from bot.services.audit import audit
from bot.services.runtime import Runtime

ACK_KEY = "alert_ack_key"


@dataclass
class AckResult:
    status: str  # acknowledged | already | refused | invalid (no such code)
    alert: Alert | None = None
    copies: list[AlertMessage] = field(default_factory=list)


def may_act_on_site(rt: Runtime, account: Account, site_id: str) -> bool:
    found = rt.staff(account)
    if found is None:
        return is_escalation_contact(rt, account, site_id)
    site, coordinator = found
    return coordinator.role == "admin" or site.id == site_id


def is_escalation_contact(rt: Runtime, account: Account, site_id: str) -> bool:
    """The site's escalation contact is paged with the same Acknowledge button as the team, and
    may use it: otherwise an alert no coordinator answers would page everyone forever."""
    return any(site.id == site_id and site.is_escalation_contact(account) for site in rt.settings.sites)


async def acknowledge(rt: Runtime, *, alert_id: int, account: Account, update_id: int | None = None) -> AckResult:
    now = rt.now()
    async with rt.session() as session:
        alert = await session.get(Alert, alert_id)
        if alert is None or not may_act_on_site(rt, account, alert.site_id):
            audit(session, at=now, actor_kind="user", actor_id=account, action="access.refused",
                  entity="alert", entity_id=alert_id, reason="acknowledge", update_id=update_id)
            await session.commit()
            return AckResult("refused")
        kind = "coordinator" if rt.staff(account) else "escalation"
        return await _acknowledge(session, rt, alert_id=alert_id, by=account.key, actor_kind=kind,
                                  actor_id=account, update_id=update_id)


async def acknowledge_by_code(rt: Runtime, *, code: str, account: Account | None = None,
                              operator: str | None = None, update_id: int | None = None) -> AckResult:
    """A code from a mail, sent to the bot by a staff member (`account`) or typed by an
    operator. It must have been issued to one of the alert's site's mail recipients; the
    acknowledgement is attributed to that recipient (and, in the audit, to who sent it)."""
    now = rt.now()
    parsed = parse(code)
    async with rt.session() as session:
        alert = await session.get(Alert, parsed[0]) if parsed else None
        owner = None
        if alert is not None:
            key = await ack_key(session, now=now)
            owner = next((r for r in mail_recipients(rt.settings.site(alert.site_id))
                          if issued_to(key, code, alert_id=alert.id, channel=r.channel, address=r.address)), None)
        actor_kind, actor_id = ("user", account) if account is not None else ("operator", operator)
        if owner is None or (account is not None and not may_act_on_site(rt, account, alert.site_id)):
            audit(session, at=now, actor_kind=actor_kind, actor_id=actor_id or "cli", action="access.refused",
                  entity="alert", entity_id=parsed[0] if parsed else None, reason="acknowledgement code",
                  update_id=update_id)
            await session.commit()
            return AckResult("invalid" if owner is None else "refused")
        coordinator = rt.staff(account) if account is not None else None
        by = account or rt.settings.site(alert.site_id).account_reached_at(owner)
        return await _acknowledge(session, rt, alert_id=alert.id, by=by.key if by else None,
                                  actor_kind="coordinator" if coordinator else ("escalation" if account
                                                                                else "operator"),
                                  actor_id=actor_id or "cli", update_id=update_id,
                                  details={"via": "code", "code_of": staff_name(rt.settings, owner)})


async def _acknowledge(session, rt: Runtime, *, alert_id: int, by: str | None, actor_kind: str, actor_id,
                       update_id: int | None, details: dict | None = None) -> AckResult:
    now = rt.now()
    changed = await session.exec(update(Alert).where(Alert.id == alert_id, Alert.acknowledged_at.is_(None))
                                 .values(acknowledged_at=now, acknowledged_by=by, next_repeat_at=None))
    if changed.rowcount == 1:
        audit(session, at=now, actor_kind=actor_kind, actor_id=actor_id, action="alert.acknowledged",
              entity="alert", entity_id=alert_id, after=details, update_id=update_id)
    await session.commit()
    alert = await session.get(Alert, alert_id, populate_existing=True)
    copies = list((await session.exec(select(AlertMessage).where(AlertMessage.alert_id == alert_id))).all())
    return AckResult("acknowledged" if changed.rowcount == 1 else "already", alert, copies)


def mail_recipients(site: Site) -> list[Recipient]:
    """Everyone at the site who may get an alert by mail, whatever the site's channels are now
    (a code mailed before a configuration change still works)."""
    return [Recipient.email(c.email) for c in site.coordinators if c.email] + \
        [r for r in escalation_recipients(site) if r.channel == "email"]


def code_for(key: bytes, *, alert_id: int, recipient: Recipient) -> str:
    return ack_code(key, alert_id=alert_id, channel=recipient.channel, address=recipient.address)


async def ack_key(session, *, now) -> bytes:
    """The secret behind acknowledgement codes: created once (race-safe), kept in the database."""
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    await session.exec(insert(RuntimeState).values(key=ACK_KEY, value=secrets.token_hex(32), updated_at=now)
                       .on_conflict_do_nothing(index_elements=["key"]))
    return bytes.fromhex((await session.get(RuntimeState, ACK_KEY)).value)
