"""Alerts for the study team: raising them, acknowledging them, and the open ones a coordinator
sees. Delivery, repeats and escalation run in the scheduler.

Every alert must have a reachable person (DESIGN.md §1): copies go to the site's recipients
(per its `alert_channels`: a chat, email or both) that their channel has not refused; when
none is left, the alert escalates at once to the site's escalation contact, an audit row
records it and the error log says so. Recipients are channel-neutral `(channel, address)`.

Acknowledging an alert records who and when, once, and stops repeats and escalation on every
channel (a repeat or escalation not yet sent is skipped by the courier once the alert is
acknowledged). Copies without a button (email) carry an acknowledgement code
(`bot.domain.ack_codes`), keyed by a secret kept in the database; a staff member sends it to the
bot as `/ack CODE`, or an operator runs `adherence-bot ack CODE` for someone who cannot reach the
bot.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.domain.outbox import OutboxKind, OutboxState
from bot.channels.port import EDITABLE_CHANNELS, Account, Recipient
from bot.config import Settings, Site
from bot.db.models import Alert, AlertMessage, Outbox, Patient, RuntimeState, UnreachableRecipient
from bot.domain.ack_codes import ack_code, issued_to, parse
from bot.domain.alerts import AlertKind, LEVEL_BY_KIND, NOTICE_KINDS
from bot.domain.hours import same_day_deadline
from bot.services.audit import audit
from bot.services.coord_access import Actor
from bot.services.outbox import ALERT_LANE, enqueue, mark_queued
from bot.services.runtime import Runtime
from bot.services.staff import staff_label

log = logging.getLogger("adherence.alerts")

# Outbox claim priorities in the alert lane (lower first).
FIRST_EMERGENCY, NEW, FOLLOW_UP = 0, 1, 2

# Alert kinds, their levels and which are notices: bot.domain.alerts.


def needs_action():
    """The SQL condition for alerts a person must act on (every kind but the notices)."""
    return col(Alert.kind).not_in(sorted(NOTICE_KINDS))


async def close_pause_notices(session: AsyncSession, *, patient_id: int, now: datetime) -> None:
    """Reminders are on again: the patient's pause notice is closed (no person acknowledged it)."""
    await session.exec(update(Alert).where(Alert.patient_id == patient_id, Alert.kind == AlertKind.PATIENT_PAUSED,
                                           col(Alert.acknowledged_at).is_(None))
                       .values(acknowledged_at=now, next_repeat_at=None))


def alert_recipients(site: Site) -> list[Recipient]:
    """Where the team's alert copies go, per the site's `alert_channels` (bot.config.Site)."""
    return site.alert_recipients()


def escalation_recipients(site: Site) -> list[Recipient]:
    """The escalation contact, on every channel it has an address for (it may be email-only)."""
    return site.escalation_recipients()


def escalated_copy(settings: Settings, alert: Alert, to: Recipient) -> bool:
    """The copy in this chat is the escalation contact's copy of an escalated alert, whose
    header says so (an edit keeps it)."""
    return alert.escalated_at is not None and to in escalation_recipients(settings.site(alert.site_id))


async def unreachable(session: AsyncSession, recipients: list[Recipient]) -> set[Recipient]:
    if not recipients:
        return set()
    rows = await session.exec(select(UnreachableRecipient.channel, UnreachableRecipient.address).where(
        col(UnreachableRecipient.address).in_({r.address for r in recipients})))
    gone = {Recipient(channel, address) for channel, address in rows.all()}
    return gone & set(recipients)


async def reachable_recipients(session: AsyncSession, site: Site) -> list[Recipient]:
    """The site's recipients that their channel has not refused."""
    recipients = alert_recipients(site)
    gone = await unreachable(session, recipients)
    return [r for r in recipients if r not in gone]


async def reachable_escalation(session: AsyncSession, site: Site) -> list[Recipient]:
    contacts = escalation_recipients(site)
    gone = await unreachable(session, contacts)
    return [r for r in contacts if r not in gone]


async def team_reached(session: AsyncSession, settings: Settings, alert: Alert) -> bool:
    """Whether a person can get this alert: a reachable recipient, or the escalation contact
    of an alert already escalated."""
    site = settings.site(alert.site_id)
    if await reachable_recipients(session, site):
        return True
    return alert.escalated_at is not None and bool(await reachable_escalation(session, site))


async def mark_recipient_unreachable(session: AsyncSession, *, settings: Settings, recipient: Recipient,
                                     now: datetime, error: str) -> bool:
    """Record that a channel refused a staff recipient for good (once); returns whether this is news."""
    if await unreachable(session, [recipient]):
        return False
    site_id = _site_of(settings, recipient)
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    result = await session.exec(insert(UnreachableRecipient).values(
        channel=recipient.channel, address=recipient.address, site_id=site_id, since=now, error=error[:500])
                                .on_conflict_do_nothing(index_elements=["channel", "address"]))
    if not result.rowcount:
        return False
    audit(session, at=now, actor_kind="system", actor_id="courier", action="recipient.unreachable",
          entity="site", entity_id=site_id, after={"recipient": staff_name(settings, recipient),
                                                   "channel": recipient.channel}, reason=error[:500])
    log.error("event=alert_recipient_unreachable site=%s recipient=%s channel=%s error=%r", site_id,
              staff_name(settings, recipient), recipient.channel, error)
    return True


async def mark_recipient_reachable(session: AsyncSession, *, settings: Settings, recipient: Recipient,
                                   now: datetime, update_id: int | None = None,
                                   actor: tuple[str, str] = ("system", "bot")) -> bool:
    result = await session.exec(delete(UnreachableRecipient).where(UnreachableRecipient.channel == recipient.channel,
                                                                   UnreachableRecipient.address == recipient.address))
    if not result.rowcount:
        return False
    audit(session, at=now, actor_kind=actor[0], actor_id=actor[1], action="recipient.reachable", entity="site",
          entity_id=_site_of(settings, recipient), after={"recipient": staff_name(settings, recipient),
                                                          "channel": recipient.channel},
          update_id=update_id)
    return True


def _site_of(settings: Settings, recipient: Recipient) -> str:
    return next((s.id for s in settings.sites if recipient in (*alert_recipients(s), *escalation_recipients(s))),
                settings.sites[0].id)


def staff_name(settings: Settings, who: Recipient | Account) -> str:
    """How a staff member is named in patients' records, logs and audit rows: never the raw id or address."""
    return staff_label(settings, who) or "unknown"


async def recipient_fixed(rt: Runtime, *, address: str, operator: str = "operator:cli") -> str | None:
    """An operator says a refused staff recipient works again (a mailbox repaired, a chat
    unblocked): alerts go there again. A mailbox never writes back to the bot, so without this
    it would stay refused for good. Returns the staff member's name, or None if none was refused."""
    now = rt.now()
    async with rt.session() as session:
        refused = (await session.exec(select(UnreachableRecipient).where(
            UnreachableRecipient.address == address.strip()))).all()
        for row in refused:
            await mark_recipient_reachable(session, settings=rt.settings, recipient=Recipient(row.channel, row.address),
                                           now=now, actor=("operator", operator))
        await session.commit()
    return staff_name(rt.settings, Recipient(refused[0].channel, refused[0].address)) if refused else None


async def escalate_now(session: AsyncSession, *, settings: Settings, alert: Alert, now: datetime,
                       reason: str) -> bool:
    """Nobody on the site's list can be reached: escalate at once. Returns whether a reachable
    escalation contact got a copy queued."""
    site = settings.site(alert.site_id)
    if alert.escalated_at is not None:
        return bool(await reachable_escalation(session, site))
    alert.escalated_at = now
    session.add(alert)
    contacts = await queue_escalation(session, site=site, alert=alert, now=now, priority=FIRST_EMERGENCY)
    audit(session, at=now, actor_kind="system", actor_id="bot", action="alert.escalated", entity="alert",
          entity_id=alert.id, after={"to": "escalation_contact" if contacts else None, "immediate": True},
          reason=reason)
    if not contacts:
        log.critical("event=alert_reaches_nobody site=%s alert_id=%s: no coordinator, alert chat or escalation "
                     "contact can be reached", alert.site_id, alert.id)
    return bool(contacts)


async def queue_escalation(session: AsyncSession, *, site: Site, alert: Alert, now: datetime,
                           priority: int) -> list[Recipient]:
    """One escalated copy to each reachable address of the escalation contact; returns them."""
    contacts = await reachable_escalation(session, site)
    for contact in contacts:
        await enqueue(session, kind=OutboxKind.ALERT, lane=ALERT_LANE, to=contact, due_at=now, now=now,
                      patient_id=alert.patient_id, alert_id=alert.id, priority=priority,
                      payload={"round": alert.repeats, "escalated": True},
                      dedupe_key=f"alert:{alert.id}:escalation:{contact.short_key}")
    return contacts


async def queue_copies(session: AsyncSession, *, alert: Alert, recipients: list[Recipient], now: datetime,
                       priority: int) -> None:
    """One copy of this round of the alert to each recipient (a repeat is a new round)."""
    for recipient in recipients:
        await enqueue(session, kind=OutboxKind.ALERT, lane=ALERT_LANE, to=recipient, due_at=now, now=now,
                      patient_id=alert.patient_id, alert_id=alert.id, payload={"round": alert.repeats},
                      priority=priority, dedupe_key=f"alert:{alert.id}:{recipient.short_key}:{alert.repeats}")


def _escalate_at(*, settings: Settings, site: Site, level: str, now: datetime) -> datetime | None:
    if level == "emergency":  # never waits for working hours
        return now + timedelta(minutes=settings.alerts.escalate_after_minutes)
    if level == "same_day":  # by the end of the working period, never within a repeat interval of it
        return same_day_deadline(site.hours, now, at_least=timedelta(minutes=settings.alerts.repeat_minutes * 2))
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
    level: str | None = None,
) -> Alert | None:
    """Create the alert and queue one copy per reachable recipient in the alert lane, in the
    caller's transaction. An alert with the same dedupe key is raised only once. With no
    reachable recipient the alert escalates at once (see `escalate_now`)."""
    site = settings.site(site_id)
    level = level or LEVEL_BY_KIND[kind]
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
    mark_queued(session)  # its copies, repeats and escalation are the scheduler's to send
    recipients = await reachable_recipients(session, site)
    priority = FIRST_EMERGENCY if level == "emergency" else NEW
    await queue_copies(session, alert=alert, recipients=recipients, now=now, priority=priority)
    audit(session, at=now, actor_kind="system", actor_id="bot", action="alert.raised", entity="alert",
          entity_id=alert.id, after={"kind": kind, "level": level, "subject_id": alert.details.get("subject_id")},
          update_id=update_id)
    if not recipients:
        await escalate_now(session, settings=settings, alert=alert, now=now, reason="no reachable recipient")
    return alert


# --- acknowledging -------------------------------------------------------------------------

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
        result = await _acknowledge(session, rt, alert_id=alert.id, by=by.key if by else None,
                                    actor_kind="coordinator" if coordinator else ("escalation" if account
                                                                                  else "operator"),
                                    actor_id=actor_id or "cli", update_id=update_id,
                                    details={"via": "code", "code_of": staff_name(rt.settings, owner)})
        if account is None and result.status == "acknowledged":
            await _queue_acknowledged_copies(session, rt, result)
        return result


async def _queue_acknowledged_copies(session, rt: Runtime, result: AckResult) -> None:
    """Acknowledged where no chat is open (an operator typed the code): the courier edits every
    delivered copy (first sends and repeats) to its acknowledged state, so none still asks for an
    acknowledgement. (In a chat the handler edits them at once.)"""
    alert, now = result.alert, rt.now()
    for copy in result.copies:
        to = Recipient(copy.channel, copy.address)
        if to.channel not in EDITABLE_CHANNELS:
            continue
        await enqueue(session, kind=OutboxKind.ALERT_UPDATE, lane=ALERT_LANE, to=to, due_at=now, now=now,
                      patient_id=alert.patient_id, alert_id=alert.id, priority=FOLLOW_UP,
                      payload={"acknowledged": True, "message_id": copy.message_id,
                               "escalated": escalated_copy(rt.settings, alert, to)},
                      dedupe_key=f"alert_update:{alert.id}:{to.short_key}:{copy.message_id}:acknowledged")
    await session.commit()
    rt.wake()


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
    if changed.rowcount == 1:  # before the delivered copies are read: a copy landing in between is in those
        await _follow_copies_in_flight(session, rt, alert)
    copies = list((await session.exec(select(AlertMessage).where(AlertMessage.alert_id == alert_id))).all())
    return AckResult("acknowledged" if changed.rowcount == 1 else "already", alert, copies)


async def _follow_copies_in_flight(session, rt: Runtime, alert: Alert) -> None:
    """A copy being sent right now was composed before the acknowledgement and will arrive
    asking for one. Queue its edit to the acknowledged state: the courier waits for that copy's
    outcome and edits exactly that message (a copy composed from now on is not sent at all)."""
    now = rt.now()
    in_flight = (await session.exec(select(Outbox).where(
        Outbox.alert_id == alert.id, Outbox.kind == OutboxKind.ALERT, col(Outbox.channel).in_(EDITABLE_CHANNELS),
        col(Outbox.state).in_([OutboxState.CLAIMED, OutboxState.SENDING])))).all()
    for copy in in_flight:
        await enqueue(session, kind=OutboxKind.ALERT_UPDATE, lane=ALERT_LANE, to=Recipient(copy.channel, copy.address),
                      due_at=now, now=now, patient_id=alert.patient_id, alert_id=alert.id, priority=FOLLOW_UP,
                      payload={"acknowledged": True, "copy_row": copy.id,
                               "escalated": bool(copy.payload.get("escalated"))},
                      dedupe_key=f"alert_update:{alert.id}:row{copy.id}:acknowledged")
    if in_flight:
        await session.commit()
        rt.wake()


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


# --- what a coordinator sees -----------------------------------------------------------------

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
