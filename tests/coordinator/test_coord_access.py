"""Only configured coordinators get coordinator answers, and only for their own site's patients
(admins: every site). Every refusal is polite, changes nothing and is audited."""

from __future__ import annotations

from datetime import date

import pytest

from bot.db.models import Course, Invitation, Patient
from bot.render import coordinator as render
from bot.services import invitations
from tests.coordinator.coord_helpers import (ADMIN_NJ, COORDINATOR_NJ, COORDINATOR_SH, audits, enrol_direct, nurse,
                                             register, send, tap, tr)
from tests.e2e.harness import running_bot


@pytest.mark.parametrize("locale", ["zh_Hans", "en"])
async def test_patients_and_strangers_are_refused_politely(engine, database_url, locale):
    async with running_bot(engine, database_url) as h:
        patient = await enrol_direct(h, 7501, "NJ-0501", locale=locale)
        stranger = h.sandbox.user(7502, language_code="zh-hans" if locale == "zh_Hans" else "en")
        for user in (patient, stranger):
            for command, payload in (("/patients", None), ("/export", None), ("/cycle", "NJ-0501 2026-12-01"),
                                     ("/withdraw", "NJ-0501"), ("/invite", None)):
                [reply] = await send(h, user, command, payload)
                assert reply.text == render.not_for_you(tr(locale)) and reply.kind == "text"
        refused = await audits(h, "access.refused")
        assert {(r.actor_kind, r.actor_id) for r in refused} == {("user", "telegram:7501"), ("user", "telegram:7502")}
        assert {r.reason for r in refused} == {"patients", "export", "cycle", "withdraw", "invite"}
        assert len(refused) == 10
        assert await h.rows(Course) == [] and len(await h.rows(Invitation)) == 1
        [row] = await h.rows(Patient)
        assert row.status == "active"
        # /report stays the patient's symptom command
        before = len(patient.messages)
        patient.send_command("/report")
        await h.sandbox.wait_for(lambda: len(patient.messages) > before)
        assert patient.last_message.buttons[-1][1] == "s:_cancel"


async def test_site_a_coordinator_cannot_touch_site_b(engine, database_url):
    async with running_bot(engine, database_url) as h:
        await enrol_direct(h, 7511, "NJ-0511")
        await register(h, "NJ-0511")
        nj_invite = await invitations.issue(h.rt, site_id="NJ", subject_id="NJ-0512")
        sh = nurse(h, COORDINATOR_SH, "zh_Hans")
        t = tr("zh_Hans")
        not_here = render.not_at_your_site(t, "NJ-0511")
        for command, payload in (("/patient", "NJ-0511"), ("/pause", "NJ-0511"), ("/cycle", "NJ-0511 2026-12-20"),
                                 ("/correct", "NJ-0511 2026-12-03"), ("/cancelcycle", "NJ-0511"),
                                 ("/withdraw", "NJ-0511"), ("/rebind", "NJ-0511")):
            [reply] = await send(h, sh, command, payload)
            assert reply.text == not_here, command
        # an unknown subject gets the same answer, so a refusal does not reveal another site's patients
        [reply] = await send(h, sh, "/patient", "NJ-9999")
        assert reply.text == render.not_at_your_site(t, "NJ-9999")
        # buttons with forged payloads
        message = sh.last_message
        for data in ("pt:p:NJ-0511", "pt:w:NJ-0511", "pt:b:NJ-0511", "cy:y:NJ-0511:20261220",
                     f"iv:{nj_invite.invitation_id}"):
            answer = await tap(h, sh, message, data)
            assert answer["show_alert"], data
        # /patients and /invites show only the SH site
        [listing] = await send(h, sh, "/patients")
        assert "NJ-0511" not in listing.text
        [invites] = await send(h, sh, "/invites")
        assert "NJ-0512" not in invites.text
        refused = await audits(h, "access.refused", actor_id=f"telegram:{COORDINATOR_SH}")
        assert {r.reason for r in refused} >= {"patient", "pause", "cycle", "correct_course", "cancel_course",
                                               "withdraw", "rebind", "revoke_invitation"}
        assert all(r.actor_kind == "coordinator" for r in refused)
        assert len(refused) == 7 + 5
        [patient] = await h.rows(Patient)
        assert patient.status == "active"
        assert len(await h.rows(Course)) == 1 and (await h.rows(Course))[0].status == "active"
        [invite] = await h.rows(Invitation, Invitation.id == nj_invite.invitation_id)
        assert invite.revoked_at is None
        assert len(await h.rows(Invitation)) == 2  # no rebind link was issued


async def test_admin_sees_and_acts_on_every_site(engine, database_url):
    async with running_bot(engine, database_url) as h:
        await enrol_direct(h, 7521, "SH-0521", site="SH")
        await enrol_direct(h, 7522, "NJ-0522")
        admin = nurse(h, ADMIN_NJ, "en")
        [listing] = await send(h, admin, "/patients")
        assert "SH-0521" in listing.text and "NJ-0522" in listing.text
        [preview] = await send(h, admin, "/cycle", "SH-0521 2026-12-01")
        await tap(h, admin, preview, preview.buttons[0][1])
        await h.sandbox.wait_for(lambda: preview.reply_markup is None)
        [course] = await h.rows(Course)
        assert course.first_day == date(2026, 12, 2)
        # an admin's invitation for an SH subject goes to the SH site
        [photo] = await send(h, admin, "/invite", "SH-0530")
        [invite] = await h.rows(Invitation, Invitation.subject_id == "SH-0530")
        assert invite.site_id == "SH" and photo.kind == "photo"
        # coordinators get the study-team help from /start and /help, in their language
        [help_text] = await send(h, admin, "/start")
        assert help_text.text == render.help_text(tr("en"), h.settings, "NJ")
        # an ordinary coordinator's /patients shows their site only; /help's examples are their site's ids
        nj = nurse(h, COORDINATOR_NJ, "zh_Hans")
        [help_text] = await send(h, nj, "/help")
        assert help_text.text == render.help_text(tr("zh_Hans"), h.settings, "NJ")
        assert "/patient NJ-017" in help_text.text and "SH-017" not in help_text.text
        [sh_help] = await send(h, nurse(h, COORDINATOR_SH, "zh_Hans"), "/help")
        assert "/patient SH-017" in sh_help.text and "NJ-017" not in sh_help.text
        [own] = await send(h, nj, "/patients")
        assert "NJ-0522" in own.text and "SH-0521" not in own.text
