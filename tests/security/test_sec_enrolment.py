"""Enrolment abuse: tokens are single use, expire, can be revoked; a subject is bound once."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from bot.db.models import AuditLog, Invitation, Patient
from bot.services import invitations
from tests.e2e.harness import running_bot
from tests.e2e.test_patient_journey import enrol


async def _try(h, user_id: int, token: str):
    user = h.sandbox.user(user_id, language_code="en")
    count = len(user.messages)
    user.send_command("/start", token)
    await h.sandbox.wait_for(lambda: len(user.messages) > count)
    return user.last_message


async def test_used_expired_revoked_tokens_and_second_account(engine, database_url):
    async with running_bot(engine, database_url) as h:
        _, used = await enrol(h, 7901, "en", "English", subject="NJ-7901")
        revoked = await invitations.issue(h.rt, site_id="NJ", subject_id="NJ-7902")
        async with h.rt.session() as session:
            await session.exec(update(Invitation).where(Invitation.id == revoked.invitation_id)
                               .values(revoked_at=h.clock.now(), revoked_by="coordinator:telegram:100000001"))
            await session.commit()
        expiring = await invitations.issue(h.rt, site_id="SH", subject_id="SH-7903", expires_days=1)
        second_account = await invitations.issue(h.rt, site_id="NJ", subject_id="NJ-7901")  # not a rebind
        h.clock.advance(timedelta(days=1))
        replies = {(await _try(h, 7999, token)).text
                   for token in (used.token, revoked.token, expiring.token, second_account.token)}
        assert len(replies) == 1  # one answer for every failure
        second = await _try(h, 7999, second_account.token)
        assert not second.buttons
        [patient] = await h.rows(Patient)
        assert patient.account == str(7901)  # the binding never moved
        reasons = {r.reason for r in await h.rows(AuditLog, AuditLog.action == "enrol.token_rejected")}
        assert {"used", "revoked", "expired"} <= reasons


async def test_rebind_moves_the_binding_once(engine, database_url):
    async with running_bot(engine, database_url) as h:
        await enrol(h, 7911, "en", "English", subject="NJ-7911")
        rebind = await invitations.issue(h.rt, site_id="NJ", subject_id="NJ-7911", purpose="rebind")
        new_phone = h.sandbox.user(7912, language_code="zh-hans")
        new_phone.send_command("/start", rebind.token)
        await h.sandbox.wait_for(lambda: new_phone.messages)
        new_phone.press(new_phone.last_message, "e:lang:zh_Hans")
        await h.sandbox.wait_for(lambda: new_phone.last_message.history)
        consent = new_phone.last_message
        new_phone.press(consent, "e:consent:yes")
        await h.sandbox.wait_for(lambda: len(consent.history) >= 2)
        new_phone.press(consent, "e:time:07.00")
        await h.sandbox.wait_for(lambda: len(new_phone.messages) >= 2)
        new_phone.press(new_phone.last_message, "e:confirm:yes")
        await h.sandbox.wait_for(lambda: len(new_phone.messages) >= 3)
        [patient] = await h.rows(Patient)
        assert patient.account == str(7912) and patient.reminder_time == "07:00"
        assert await h.rows(AuditLog, AuditLog.action == "patient.rebound")
        old_phone = h.sandbox.user(7911)
        count = len(old_phone.messages)
        old_phone.send_command("/status")
        await h.sandbox.wait_for(lambda: len(old_phone.messages) > count)
        assert "invitation" in old_phone.last_message.text  # the old account is no longer the patient
