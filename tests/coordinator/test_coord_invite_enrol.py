"""A coordinator invites (deep link + QR code), the patient enrols with it, the coordinator
registers the course after a preview; invitations can be listed and revoked. Both languages."""

from __future__ import annotations

import io
from datetime import date, timedelta

import pytest
import zxingcpp
from PIL import Image

from bot.db.models import Course, DoseDay, Invitation, Patient
from tests.coordinator.coord_helpers import NURSE_IDS, NURSES, audits, in_language, nurse, send, tap, tr

PATIENT = 7301


def decode_qr(png: bytes) -> str:
    [barcode] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    return barcode.text


async def enrol_through_telegram(h, user_id: int, token: str, locale: str):
    """The patient's own steps after scanning the code: /start <token>, language, consent, time, confirm."""
    user = h.sandbox.user(user_id, language_code="zh-hans" if locale == "zh_Hans" else "en")
    user.send_command("/start", token)
    await h.sandbox.wait_for(lambda: user.messages and user.last_message.buttons)
    user.press(user.last_message, f"e:lang:{locale}")
    await h.sandbox.wait_for(lambda: len(user.last_message.history) >= 1)
    consent = user.last_message
    user.press(consent, "e:consent:yes")
    await h.sandbox.wait_for(lambda: len(consent.history) >= 2)
    user.press_button("08:00", consent)
    await h.sandbox.wait_for(lambda: len(user.messages) >= 2)
    user.press(user.last_message, "e:confirm:yes")
    await h.sandbox.wait_for(lambda: len(user.messages) >= 3)
    return user


@pytest.mark.parametrize("nurse_id, locale", NURSES, ids=NURSE_IDS)
async def test_invite_qr_enrol_and_register_course(engine, database_url, nurse_id, locale):
    from tests.e2e.harness import running_bot

    async with running_bot(engine, database_url) as h:
        coordinator = nurse(h, nurse_id, locale)
        [photo] = await send(h, coordinator, "/invite", "nj-0301")
        assert photo.kind == "photo" and photo.file_bytes
        link = decode_qr(photo.file_bytes)
        assert link.startswith(f"https://t.me/{h.sandbox.bot_username}?start=")
        assert link in photo.text  # the caption carries the same link to send on
        assert in_language(photo.text, locale, "Let the patient scan this QR code with their phone camera, "
                                               "or send them the link:")
        [(revoke_label, revoke_data)] = photo.buttons
        assert revoke_data.startswith("iv:") and revoke_label == tr(locale)._("Revoke")
        [invitation] = await h.rows(Invitation)
        assert invitation.site_id == "NJ" and invitation.subject_id == "NJ-0301"
        assert (invitation.expires_at - invitation.created_at).days == 7
        assert await audits(h, "invitation.issued", actor_id=f"telegram:{nurse_id}")

        token = link.split("start=", 1)[1]
        await enrol_through_telegram(h, PATIENT, token, "en")
        [patient] = await h.rows(Patient)
        assert patient.subject_id == "NJ-0301" and patient.account == str(PATIENT)

        [preview] = await send(h, coordinator, "/cycle", "NJ-0301 2026-12-01")
        t = tr(locale)
        assert t._("Register cycle {cycle} for {subject}?", cycle=1, subject="NJ-0301") in preview.text
        for day in range(1, 15):  # the 14 dates, day 1 = the day after chemotherapy ended
            assert t._("Day {day}: {date}", day=day, date=t.date(date(2026, 12, 1) + timedelta(days=day))) \
                in preview.text
        assert await h.rows(Course) == []  # nothing before the confirmation
        register = preview.buttons[0][1]
        await tap(h, coordinator, preview, register)
        await h.sandbox.wait_for(lambda: preview.reply_markup is None)
        assert t._("Registered.") in preview.text
        [course] = await h.rows(Course)
        assert (course.first_day, course.last_day, course.source) == (date(2026, 12, 2), date(2026, 12, 15),
                                                                     "coordinator")
        assert len(await h.rows(DoseDay)) == 14
        [registered] = await audits(h, "course.registered")
        assert registered.actor_kind == "coordinator" and registered.actor_id == f"telegram:{nurse_id}"
        # a second tap on the same (stale) button registers nothing
        answer = await tap(h, coordinator, preview, register)
        assert len(await h.rows(Course)) == 1 and answer is not None


@pytest.mark.parametrize("nurse_id, locale", NURSES, ids=NURSE_IDS)
async def test_invites_list_and_revoke(engine, database_url, nurse_id, locale):
    from tests.e2e.harness import running_bot

    async with running_bot(engine, database_url) as h:
        coordinator = nurse(h, nurse_id, locale)
        [first] = await send(h, coordinator, "/invite", "NJ-0311")
        await send(h, coordinator, "/invite")
        [listing] = await send(h, coordinator, "/invites")
        t = tr(locale)
        assert t._("Open invitations ({count}):", count=2) in listing.text and "NJ-0311" in listing.text
        assert len(listing.buttons) == 2
        answer = await tap(h, coordinator, listing, listing.buttons[0][1])
        assert answer["text"] == t._("Invitation revoked. The link no longer works.")
        await h.sandbox.wait_for(lambda: len(listing.buttons) == 1)
        assert t._("Open invitations ({count}):", count=1) in listing.text
        revoked = [i for i in await h.rows(Invitation) if i.revoked_at is not None]
        assert len(revoked) == 1 and revoked[0].revoked_by == f"coordinator:telegram:{nurse_id}"
        assert await audits(h, "invitation.revoked", actor_id=f"telegram:{nurse_id}")
        # the revoked link no longer enrols anyone
        token = decode_qr(first.file_bytes).split("start=", 1)[1]
        stranger = h.sandbox.user(7399, language_code="en")
        stranger.send_command("/start", token)
        await h.sandbox.wait_for(lambda: stranger.messages)
        assert not stranger.last_message.buttons and await h.rows(Patient) == []
        # revoking again changes nothing and says so
        again = await tap(h, coordinator, first, first.buttons[0][1])
        assert again["text"] == t._("This invitation was already revoked.")
