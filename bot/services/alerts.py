"""Raising alerts for the study team. Delivery, repeats and escalation run in the scheduler.

Every alert must have a reachable person (DESIGN.md §1): copies go to the site's recipients
(per its `alert_channels`: a chat, email or both) that their channel has not refused; when
none is left, the alert escalates at once to the site's escalation contact, an audit row
records it and the error log says so. Recipients are channel-neutral `(channel, address)`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.channels.port import Account, Recipient
from bot.config import Settings, Site
from bot.db.models import Alert, Patient, UnreachableRecipient
from bot.domain.hours import same_day_deadline
from bot.services.audit import audit
from bot.services.outbox import ALERT_LANE, enqueue
from bot.services.staff import staff_label

log = logging.getLogger("adherence.alerts")

# Outbox claim priorities in the alert lane (lower first).
FIRST_EMERGENCY, NEW, FOLLOW_UP = 0, 1, 2

LEVEL_BY_KIND = {
    "emergency_symptom": "emergency",
    "same_day_symptom": "same_day",
    "consecutive_missed": "same_day",
    "unreachable": "same_day",
    "patient_course_start": "info",
    "patient_paused": "info",
    "patient_resumed": "info",
    "new_enrolment": "info",
    "patient_message": "info",
    "missed_reason": "same_day",
    "conmed_reported": "same_day",
    "tablet_count_difference": "info",
    "visit_change_request": "info",  # the patient asks to change a visit's date or time  # tablets left differ from the dose record beyond the tolerance  # the patient reports starting a medicine the protocol may exclude
    "patient_course_conflict": "same_day",  # the patient's chemo end disagrees with the registered course  # doctor said stop, side effects, ran out of tablets  # raised to same_day or emergency by the keyword safety net
}


# Notices: for information only. Nobody acknowledges them; they never repeat or escalate and are
# not counted as open (/alerts, /patients, the digest). A resume closes the patient's pause notice.
NOTICE_KINDS = frozenset({"new_enrolment", "patient_paused", "patient_resumed"})


def is_notice(kind: str) -> bool:
    return kind in NOTICE_KINDS


def needs_action():
    """The SQL condition for alerts a person must act on (every kind but the notices)."""
    return col(Alert.kind).not_in(sorted(NOTICE_KINDS))


async def close_pause_notices(session: AsyncSession, *, patient_id: int, now: datetime) -> None:
    """Reminders are on again: the patient's pause notice is closed (no person acknowledged it)."""
    await session.exec(update(Alert).where(Alert.patient_id == patient_id, Alert.kind == "patient_paused",
                                           col(Alert.acknowledged_at).is_(None))
                       .values(acknowledged_at=now, next_repeat_at=None))


def alert_recipients(site: Site) -> list[Recipient]:
    """Where the team's alert copies go, per the site's `alert_channels` (bot.config.Site)."""
    return site.alert_recipients()


def escalation_recipients(site: Site) -> list[Recipient]:
    """The escalation contact, on every channel it has an address for (it may be email-only)."""
    return site.escalation_recipients()


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
                                   now: datetime, update_id: int | None = None) -> bool:
    result = await session.exec(delete(UnreachableRecipient).where(UnreachableRecipient.channel == recipient.channel,
                                                                   UnreachableRecipient.address == recipient.address))
    if not result.rowcount:
        return False
    audit(session, at=now, actor_kind="system", actor_id="bot", action="recipient.reachable", entity="site",
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
        await enqueue(session, kind="alert", lane=ALERT_LANE, to=contact, due_at=now, now=now,
                      patient_id=alert.patient_id, alert_id=alert.id, priority=priority,
                      payload={"round": alert.repeats, "escalated": True},
                      dedupe_key=f"alert:{alert.id}:escalation:{contact.short_key}")
    return contacts


async def queue_copies(session: AsyncSession, *, alert: Alert, recipients: list[Recipient], now: datetime,
                       priority: int) -> None:
    """One copy of this round of the alert to each recipient (a repeat is a new round)."""
    for recipient in recipients:
        await enqueue(session, kind="alert", lane=ALERT_LANE, to=recipient, due_at=now, now=now,
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
    recipients = await reachable_recipients(session, site)
    priority = FIRST_EMERGENCY if level == "emergency" else NEW
    await queue_copies(session, alert=alert, recipients=recipients, now=now, priority=priority)
    audit(session, at=now, actor_kind="system", actor_id="bot", action="alert.raised", entity="alert",
          entity_id=alert.id, after={"kind": kind, "level": level, "subject_id": alert.details.get("subject_id")},
          update_id=update_id)
    if not recipients:
        await escalate_now(session, settings=settings, alert=alert, now=now, reason="no reachable recipient")
    return alert
