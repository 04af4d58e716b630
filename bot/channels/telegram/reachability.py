"""An unreachable patient (Telegram refused a send: blocked, deactivated) becomes reachable again
as soon as they write to the bot: any message, button or command, or unblocking the bot. So
does a coordinator or escalation contact whose alerts Telegram refused.

Registered as a TypeHandler in its own group, before the feature handlers: it never answers
and never stops the update from reaching them. Wire it with `register(application)`.
"""

from __future__ import annotations

import logging

from sqlalchemy import update as sql_update
from sqlmodel import select
from telegram import ChatMember, Update
from telegram.ext import Application, ContextTypes, TypeHandler

from bot.channels.port import Account, ChannelName, Recipient
from bot.db.models import Patient
from bot.services.alerts import mark_recipient_reachable
from bot.services.audit import audit

GROUP = -10
log = logging.getLogger("adherence.reachability")


def _is_staff_chat(settings, user_id: int) -> bool:
    return any(user_id in (site.alert_chat_id, site.escalation_contact) for site in settings.sites)


async def patient_wrote(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    user = update.effective_user
    if user is None or user.is_bot:
        return
    member = update.my_chat_member
    if member is not None and member.new_chat_member.status in (ChatMember.BANNED, ChatMember.LEFT):
        return  # this update says they blocked us, not that they came back
    rt = context.application.bot_data["runtime"]
    try:
        await _mark_reachable(rt, user.id, update.update_id, getattr(context, "caller_facts", None))
    except Exception as error:  # never an error reply of its own: the feature handler answers once
        log.warning("event=reachability_check_failed error=%s", type(error).__name__)


async def _mark_reachable(rt, user_id: int, update_id: int, facts=None) -> None:
    if rt.staff(Account.telegram(user_id)) is not None or _is_staff_chat(rt.settings, user_id):
        async with rt.session() as session:
            if await mark_recipient_reachable(session, settings=rt.settings, recipient=Recipient.telegram(user_id),
                                              now=rt.now(),
                                              update_id=update_id):
                await session.commit()
                log.info("event=alert_recipient_reachable_again")
        return
    if facts is not None and not facts.unreachable_patient:
        return  # the update gate already looked: not a patient marked unreachable
    async with rt.single() as session:  # the gate could not tell: a read on its own
        patient = (await session.exec(select(Patient).where(Patient.channel == ChannelName.TELEGRAM,
                                                            Patient.account == str(user_id),
                                                            Patient.unreachable.is_(True)))).first()
    if patient is None:
        return
    async with rt.session() as session:
        flipped = await session.exec(sql_update(Patient).where(Patient.id == patient.id, Patient.unreachable.is_(True))
                                     .values(unreachable=False))
        if flipped.rowcount != 1:
            return
        audit(session, at=rt.now(), actor_kind="patient", actor_id=patient.subject_id, action="patient.reachable",
              entity="patient", entity_id=patient.subject_id, before={"unreachable": True},
              after={"unreachable": False}, update_id=update_id)
        await session.commit()
    rt.wake()  # their open days can be reminded again


def register(application: Application) -> None:
    application.add_handler(TypeHandler(Update, patient_wrote), group=GROUP)
