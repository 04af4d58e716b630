"""What patients say outside a question, and what the study team answers.

Every text, voice note, photo or document a patient sends outside a dialog is stored, relayed to
the site's team as an alert (its text in the alert; media copied, protected) and answered. The
keyword safety net (`bot.domain.keywords`) only raises the alert's level and picks the advice;
a message that matches nothing is relayed all the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlmodel import select

from bot.domain.outbox import OutboxKind
from bot.domain.alerts import AlertKind
from bot.db.models import Alert, Patient, PatientMessage
from bot.domain.hours import next_working_start, seen_today
from bot.domain.keywords import triage_text
from bot.domain.triage import TriageLevel
from bot.channels.port import RELAYING_CHANNELS, Account
from bot.services.alerts import (FIRST_EMERGENCY, NEW, may_act_on_site, raise_alert, reachable_escalation,
                                 reachable_recipients, staff_name, team_reached)
from bot.services.audit import audit
from bot.services.outbox import ALERT_LANE, NORMAL_LANE, enqueue
from bot.services.queries import patient_by_account
from bot.services.runtime import Runtime
from bot.services.refusal import Refused

RELAY_MEDIA_KIND = OutboxKind.RELAY_MEDIA
STAFF_REPLY_KIND = OutboxKind.STAFF_REPLY
TEXT_SHOWN = 1000  # characters of a message shown in the alert (all of it is stored)


class NotAPatient(Exception):
    """The sender is not an enrolled patient."""


class ReplyRefused(Refused):
    """code: not_found | not_your_site | empty"""


@dataclass(frozen=True)
class Relayed:
    message_id: int
    level: TriageLevel | None
    matched: tuple[str, ...]
    site_id: str
    received_at: datetime
    seen_from: datetime  # when a person on the team reads it (received_at during working hours)
    seen_today: bool
    team_reached: bool


def classify(rt: Runtime, text: str | None) -> tuple[TriageLevel | None, tuple[str, ...]]:
    """Pure keyword triage from the configuration (no database): usable before saving."""
    rules, fever = rt.settings.triage.keyword_rules()
    result = triage_text(text or "", rules, fever)
    return result.level, result.codes


async def receive(rt: Runtime, *, account: Account, kind: str, text: str | None,
                  channel_message_id: int | None, update_id: int | None = None) -> Relayed:
    level, matched = classify(rt, text)
    now = rt.now()
    async with rt.session() as session:
        patient = await patient_by_account(session, account=account)
        if patient is None:
            raise NotAPatient
        row = PatientMessage(patient_id=patient.id, at=now, direction="from_patient", kind=kind, text=text,
                             level=level.key if level else "info", matched=list(matched), author=patient.subject_id,
                             channel_message_id=channel_message_id, update_id=update_id)
        session.add(row)
        await session.flush()
        # The text stays out of the audit row and the logs (it may hold anything); the table keeps it.
        audit(session, at=now, actor_kind="patient", actor_id=patient.subject_id, action="message.received",
              entity="patient_message", entity_id=row.id,
              after={"kind": kind, "length": len(text or ""), "level": row.level, "matched": list(matched)},
              update_id=update_id)
        alert = await raise_alert(session, settings=rt.settings, now=now, site_id=patient.site_id,
                                  kind=AlertKind.PATIENT_MESSAGE, patient=patient, level=row.level,
                                  details={"message_id": row.id, "text": (text or "")[:TEXT_SHOWN], "media": kind,
                                           "matched": list(matched)},
                                  dedupe_key=f"message:{row.id}", update_id=update_id)
        row.alert_id = alert.id
        site = rt.settings.site(patient.site_id)
        recipients = await reachable_recipients(session, site)
        if kind != "text" and channel_message_id is not None and patient.address \
                and patient.channel in RELAYING_CHANNELS:
            # The patient's channel relays the media itself (a copy of their message) to staff on the
            # same channel; mail carries none of it.
            targets = [r for r in recipients or await reachable_escalation(session, site)
                       if r.channel == patient.channel]
            for target in targets:  # after the alert text (same priority, later id)
                await enqueue(session, kind=RELAY_MEDIA_KIND, lane=ALERT_LANE, to=target, due_at=now, now=now,
                              patient_id=patient.id, alert_id=alert.id,
                              priority=FIRST_EMERGENCY if level is TriageLevel.EMERGENCY else NEW,
                              payload={"from_chat_id": patient.address, "message_id": channel_message_id},
                              dedupe_key=f"relay:{row.id}:{target.address}")
        reached = await team_reached(session, rt.settings, alert)
        await session.commit()
        result = Relayed(message_id=row.id, level=level, matched=matched, site_id=patient.site_id, received_at=now,
                         seen_from=next_working_start(site.hours, now), seen_today=seen_today(site.hours, now),
                         team_reached=reached)
    rt.wake()
    return result


async def reply(rt: Runtime, *, staff: Account, alert_id: int, text: str,
                update_id: int | None = None) -> str:
    """A coordinator answers a relayed message: stored, audited, queued to the patient, and the
    alert is acknowledged by the reply. Returns the patient's subject id."""
    text = (text or "").strip()[:3000]
    if not text:
        raise ReplyRefused("empty")
    now = rt.now()
    async with rt.session() as session:
        alert = await session.get(Alert, alert_id)
        if alert is None or alert.patient_id is None:
            raise ReplyRefused("not_found")
        if not may_act_on_site(rt, staff, alert.site_id):
            audit(session, at=now, actor_kind="user", actor_id=staff, action="access.refused",
                  entity="alert", entity_id=alert_id, reason="reply", update_id=update_id)
            await session.commit()
            raise ReplyRefused("not_your_site")
        patient = await session.get(Patient, alert.patient_id)
        author = staff_name(rt.settings, staff)
        row = PatientMessage(patient_id=patient.id, at=now, direction="to_patient", kind="text", text=text,
                             author=author, alert_id=alert.id, update_id=update_id)
        session.add(row)
        await session.flush()
        audit(session, at=now, actor_kind="coordinator", actor_id=staff, action="message.replied",
              entity="patient_message", entity_id=row.id,
              after={"subject_id": patient.subject_id, "length": len(text)}, update_id=update_id)
        if patient.address:
            await enqueue(session, kind=STAFF_REPLY_KIND, lane=NORMAL_LANE, to=patient.recipient, due_at=now,
                          now=now, patient_id=patient.id, priority=FIRST_EMERGENCY,
                          payload={"message_id": row.id}, dedupe_key=f"reply:{row.id}")
        if alert.acknowledged_at is None:
            await session.exec(update(Alert).where(Alert.id == alert.id, Alert.acknowledged_at.is_(None)).values(
                acknowledged_at=now, acknowledged_by=staff.key, next_repeat_at=None))
            audit(session, at=now, actor_kind="coordinator", actor_id=staff, action="alert.acknowledged",
                  entity="alert", entity_id=alert.id, reason="replied", update_id=update_id)
        await session.commit()
        subject = patient.subject_id
    rt.wake()
    return subject


async def messages_for(session, *, patient_id: int, limit: int = 5) -> list[PatientMessage]:
    """The latest messages both ways, oldest first (for the patient card)."""
    rows = (await session.exec(select(PatientMessage).where(PatientMessage.patient_id == patient_id)
                               .order_by(PatientMessage.id.desc()).limit(limit))).all()  # type: ignore[attr-defined]
    return list(reversed(rows))
