"""Issue 14, part 4: the family helper, end to end through the sandbox in both languages. A helper
joins only after the patient consents; is told of a not-reported day; reports an emergency on the
patient's behalf (advice to the helper first, the alert names the helper); and is cut off at once
when the patient withdraws consent (queued notices are never sent). Switched off: nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.db.models import Alert, AuditLog, Helper, Invitation, Outbox, Patient, SymptomReport
from bot.i18n import Translator
from bot.services import exports, family, invitations, patients
from bot.services.coord_access import operator_actor
from tests.e2e.harness import COORDINATOR_NJ, assert_language, running_bot
from tests.e2e.test_patient_days import DAY1, enrolled_with_course
from tests.e2e.test_patient_journey import CASES

ON = {"helpers": {"enabled": True}}
# Day 1 closes at local midnight (16:00 UTC), in quiet hours: its notice waits for 06:30 local.
DAY1_CLOSED = DAY1 + timedelta(hours=16, minutes=5)
QUIET_OVER = DAY1 + timedelta(hours=22, minutes=31)


async def consent(h, patient, locale: str):
    t = Translator(locale)
    patient.send_command("/helpers")
    await h.sandbox.wait_for(lambda: patient.last_message.buttons)
    screen = patient.last_message
    assert t._("I agree to a family helper") in screen.button_texts
    patient.press(screen, "hf:ok")
    await h.sandbox.wait_for(lambda: t._("Invite a helper") in screen.button_texts)
    return screen


async def join(h, helper, token: str, locale: str):
    count = len(helper.messages)
    helper.send_command("/start", token)
    await h.sandbox.wait_for(lambda: len(helper.messages) > count and helper.last_message.buttons)
    question = helper.last_message
    helper.press(question, f"hf:lg:{locale}")
    await h.sandbox.wait_for(lambda: any(d == "hf:jn" for _, d in question.buttons))
    helper.press(question, "hf:jn")
    await h.sandbox.wait_for(lambda: not question.buttons and len(helper.messages) > count + 1)
    [row] = await h.rows(Helper, Helper.account == str(helper.user_id))
    return row


async def helper_with_patient(h, language_code, locale, button, user_id):
    """An enrolled patient with a course, who consents and invites a helper (in the same
    language) from /helpers; the helper joins through that link."""
    patient = await enrolled_with_course(h, language_code, button, user_id)
    screen = await consent(h, patient, locale)
    count = len(patient.messages)
    patient.press(screen, "hf:in")
    await h.sandbox.wait_for(lambda: len(patient.messages) > count and "start=" in (patient.last_message.text or ""))
    token = patient.last_message.text.split("start=")[1].split()[0]
    [invitation] = await h.rows(Invitation, Invitation.purpose == "helper")
    assert invitation.created_by == f"patient:NJ-{user_id}"
    helper = h.sandbox.user(user_id + 500, language_code=language_code)
    row = await join(h, helper, token, locale)
    return patient, helper, row


def texts(user) -> list[str]:
    return [m.text or "" for m in user.messages]


@pytest.mark.parametrize("language_code, locale, button, user_id", CASES)
async def test_a_helper_joins_only_after_consent_and_is_told_of_a_not_reported_day(
        engine, database_url, language_code, locale, button, user_id):
    t = Translator(locale)
    async with running_bot(engine, database_url, **ON) as h:
        patient = await enrolled_with_course(h, language_code, button, user_id)
        issued, _ = await family.invite_by_coordinator(h.rt, operator_actor(), subject_id=f"NJ-{user_id}")
        helper = h.sandbox.user(user_id + 500, language_code=language_code)
        helper.send_command("/start", issued.token)  # before the patient agreed: refused, token kept
        await h.sandbox.wait_for(lambda: helper.messages)
        assert t._("The person you help has not agreed to a helper yet. Ask them to send /helpers to the bot and "
                   "agree, then open your link again.") == helper.last_message.text
        assert await h.rows(Helper) == []

        await consent(h, patient, locale)
        [given] = await h.rows(AuditLog, AuditLog.action == "helper.consent_given")
        assert given.actor_id == f"NJ-{user_id}"
        row = await join(h, helper, issued.token, locale)
        assert (row.helper_id, row.status) == ("H-NJ-001", "active")
        assert t._("You are now a family helper. Thank you.") in helper.last_message.text
        await h.tick()  # the patient hears that a helper joined; the helper, that the course runs
        await h.sandbox.wait_for(lambda: any("H-NJ-001" in x for x in texts(patient)))
        course_note = t._("A new course of {medication} starts for the person you help.",
                          medication=h.settings.medication.name(locale))
        await h.sandbox.wait_for(lambda: any(course_note in x for x in texts(helper)))

        await h.tick(DAY1)  # the day's reminder goes to the patient only, who does not answer
        before = len(helper.messages)
        await h.tick(DAY1_CLOSED)
        assert len(helper.messages) == before  # closed at midnight: the notice waits for the morning
        await h.tick(QUIET_OVER)
        day = t._("The person you help has not confirmed their {medication} for {date}.",
                  medication=h.settings.medication.name(locale), date=t.date(DAY1.date()))
        await h.sandbox.wait_for(lambda: any(day == x for x in texts(helper)))
        assert all(not m.buttons for m in helper.messages[before:])
        assert_language(helper.messages, locale)
        # typed words are not relayed (the helper is told so), but danger words get the 120 advice first
        count = len(helper.messages)
        helper.send_text("吐血了" if locale == "zh_Hans" else "she is vomiting blood")
        await h.sandbox.wait_for(lambda: len(helper.messages) == count + 2)
        assert t._("Call 120 now, or go to the nearest emergency department.") in helper.messages[count].text
        assert t._("Messages from helpers are not read here.") in helper.last_message.text
        # the helper's /status: the same course overview, the helper's wording around it
        helper.send_command("/status")
        await h.sandbox.wait_for(lambda: (helper.last_message.text or "").startswith(
            t._("Course of the person you help:")))
        assert t._("Cycle {cycle}: {first} – {last}", cycle=1, first=t.date(DAY1.date()),
                   last=t.date(DAY1.date() + timedelta(days=13))) in helper.last_message.text


@pytest.mark.parametrize("language_code, locale, button, user_id", CASES)
async def test_a_helper_reports_an_emergency_for_the_patient(engine, database_url, language_code, locale, button,
                                                             user_id):
    t = Translator(locale)
    async with running_bot(engine, database_url, **ON) as h:
        patient, helper, row = await helper_with_patient(h, language_code, locale, button, user_id + 20)
        helper.send_text(t._("⚠ Report a symptom for them"))
        await h.sandbox.wait_for(lambda: any(d == "s:black_stool" for _, d in helper.last_message.buttons))
        picker = helper.last_message
        helper.press(picker, "s:black_stool")
        await h.sandbox.wait_for(lambda: any(x.startswith("☑") for x in picker.button_texts))
        calls = len(h.sandbox.calls)
        helper.press(picker, "s:_send:NJ")
        sent = t._("Your report was sent to your study team. Still call 120 or go to the emergency department now.")
        await h.sandbox.wait_for(lambda: sent in (picker.text or ""))
        advice = t._("Call 120 now, or go to the nearest emergency department.")
        to_helper = [c for c in h.sandbox.calls[calls:] if c.chat_id == helper.user_id]
        first_advice = next(i for i, c in enumerate(to_helper)
                            if c.method == "sendMessage" and advice in c.params.get("text", ""))
        confirmation = next(i for i, c in enumerate(to_helper)
                            if c.method == "editMessageText" and sent in c.params.get("text", ""))
        assert first_advice < confirmation  # the advice first, then "sent"
        assert not any(advice in x for x in texts(patient))

        [report] = await h.rows(SymptomReport)
        assert (report.helper_id, report.level) == (row.helper_id, "emergency")
        [alert] = await h.rows(Alert, Alert.kind == "emergency_symptom")
        assert alert.details["helpers"] == [row.helper_id]
        named = Translator("zh_Hans")._("Reported by helper {helper} on the patient's behalf", helper=row.helper_id)
        await h.sandbox.wait_for(lambda: any(named in (m.text or "") for m in h.sandbox.messages(COORDINATOR_NJ)))
        # the helper's note reaches the alert under the helper's name, never as the patient's words
        helper.send_text("他一直在发抖 / shaking")
        zh = Translator("zh_Hans")
        noted = zh._("Note from helper {helper}: {note}", helper=row.helper_id, note="他一直在发抖 / shaking")
        await h.sandbox.wait_for(lambda: any(noted in (m.text or "") for m in h.sandbox.messages(COORDINATOR_NJ)))
        assert not any(zh._("Patient's note: {note}", note="他一直在发抖 / shaking") in (m.text or "")
                       for m in h.sandbox.messages(COORDINATOR_NJ))
        [audited] = await h.rows(AuditLog, AuditLog.action == "symptom.reported")
        assert (audited.actor_kind, audited.actor_id) == ("helper", row.helper_id)

        export = await exports.collect(h.rt, operator_actor())
        [exported] = export.tables["symptom_reports"]
        assert exported["reported_by"] == row.helper_id and exported["subject_id"] == f"NJ-{user_id + 20}"
        [listed] = export.tables["helpers"]
        assert (listed["helper_id"], listed["status"]) == (row.helper_id, "active")
        flat = repr(export.tables)
        assert str(helper.user_id) not in flat  # the helper appears only by the pseudonymous id
        assert ("helpers.removal_reason", "consent_withdrawn") in {(r["field"], r["code"]) for r in export.codebook}

        # the patient leaves the study: their helper is cut off with them
        await patients.withdraw(h.rt, operator_actor(), subject_id=f"NJ-{user_id + 20}", reason="moved away")
        helper.send_command("/status")
        cut_off = t._("You are no longer a family helper in this study, so this bot sends you nothing more.")
        await h.sandbox.wait_for(lambda: cut_off in (helper.last_message.text or ""))


@pytest.mark.parametrize("language_code, locale, button, user_id", CASES)
async def test_withdrawing_consent_cuts_every_helper_off_at_once(engine, database_url, language_code, locale, button,
                                                                 user_id):
    t = Translator(locale)
    async with running_bot(engine, database_url, **ON) as h:
        patient, helper, row = await helper_with_patient(h, language_code, locale, button, user_id + 40)
        await h.tick(DAY1)
        await h.tick(DAY1_CLOSED)
        [queued] = [r for r in await h.rows(Outbox, Outbox.kind == family.NOTICE_KIND)
                    if r.payload.get("notice") == family.NOT_REPORTED]
        assert queued.state == "pending"  # waiting for the end of the quiet hours

        patient.send_command("/helpers")
        await h.sandbox.wait_for(lambda: any(d == "hf:wd" for _, d in patient.last_message.buttons))
        screen = patient.last_message
        patient.press(screen, "hf:wd")
        await h.sandbox.wait_for(lambda: screen.text == t._(
            "Your agreement is withdrawn. No helper gets any message about you any more."))
        [removed] = await h.rows(Helper)
        assert (removed.status, removed.removal_reason, removed.removed_by) == ("removed", "consent_withdrawn", "patient")
        assert (await h.rows(Outbox, Outbox.id == queued.id))[0].state == "skipped"
        assert await h.rows(AuditLog, AuditLog.action == "helper.consent_withdrawn")

        before = len(helper.messages)
        await h.tick(QUIET_OVER)
        await h.tick(QUIET_OVER + timedelta(days=1))
        assert len(helper.messages) == before  # the queued notice and later ones are never sent
        helper.send_command("/status")  # the next update is refused, calmly
        cut_off = t._("You are no longer a family helper in this study, so this bot sends you nothing more.")
        await h.sandbox.wait_for(lambda: cut_off in (helper.last_message.text or ""))
        helper.send_text(t._("⚠ Report a symptom for them"))
        await h.sandbox.wait_for(lambda: len(helper.messages) == before + 2)
        assert cut_off in helper.last_message.text
        assert_language(helper.messages, locale)
        assert [r.helper_id for r in await h.rows(SymptomReport)] == []


async def test_a_coordinator_invites_and_removes_a_helper(engine, database_url):
    async with running_bot(engine, database_url, helpers={"enabled": True, "max_per_patient": 1}) as h:
        patient = await enrolled_with_course(h, "en", "English", 7661)
        nurse = h.sandbox.user(COORDINATOR_NJ, language_code="zh-hans")
        nurse.send_command("/helper", "NJ-7661")
        await h.sandbox.wait_for(lambda: nurse.messages and nurse.last_message.kind == "photo")
        caption = nurse.last_message.text
        assert "NJ-7661" in caption and "患者尚未同意设置协助者" in caption
        token = caption.split("start=")[1].split()[0]
        await consent(h, patient, "en")
        helper = h.sandbox.user(7662, language_code="en")
        row = await join(h, helper, token, "en")
        second = h.sandbox.user(7663, language_code="en")  # the link is single-use
        second.send_command("/start", token)
        await h.sandbox.wait_for(lambda: second.messages)
        assert await h.rows(Helper, Helper.account == str(7663)) == []
        count = len(nurse.messages)
        nurse.send_command("/helper", "NJ-7661")  # at most max_per_patient helpers
        full = Translator("zh_Hans")._("This patient already has the most helpers allowed. Nothing was changed.")
        await h.sandbox.wait_for(lambda: any(m.text == full for m in nurse.messages[count:]))
        assert len(await h.rows(Invitation, Invitation.purpose == "helper")) == 1
        count = len(nurse.messages)
        nurse.send_command("/patient", "NJ-7661")  # the card names the helper by id only
        await h.sandbox.wait_for(lambda: len(nurse.messages) > count and "NJ-7661" in (nurse.last_message.text or ""))
        assert f"家属协助者（患者于 12月1日 周二 同意）：{row.helper_id}" in nurse.last_message.text
        assert "7662" not in nurse.last_message.text

        count = len(nurse.messages)
        nurse.send_command("/helper", f"remove {row.helper_id} 患者要求")
        await h.sandbox.wait_for(lambda: len(nurse.messages) > count)
        assert row.helper_id in nurse.last_message.text
        [removed] = await h.rows(Helper)
        assert removed.status == "removed" and removed.removed_by.startswith("coordinator:")
        helper.send_command("/status")
        await h.sandbox.wait_for(lambda: "no longer a family helper" in (helper.last_message.text or ""))


async def test_switched_off_no_helper_messages_and_commands_answer_unavailable(engine, database_url):
    async with running_bot(engine, database_url) as h:
        assert not h.settings.helpers.enabled
        patient = await enrolled_with_course(h, "en", "English", 7671)
        patient.send_command("/helpers")
        await h.sandbox.wait_for(lambda: patient.last_message.text == "Family helpers are not used in this study.")
        nurse = h.sandbox.user(COORDINATOR_NJ, language_code="zh-hans")
        nurse.send_command("/helper", "NJ-7671")
        off = Translator("zh_Hans")._("Family helpers are not used in this study.")
        await h.sandbox.wait_for(lambda: any(m.text == off for m in nurse.messages))
        with pytest.raises(family.HelperRefused):
            await family.invite_by_coordinator(h.rt, operator_actor(), subject_id="NJ-7671")
        for day in range(0, 3):
            await h.tick(DAY1 + timedelta(days=day, hours=23))
        assert await h.rows(Outbox, Outbox.kind == family.NOTICE_KIND) == []
        assert await h.rows(Helper) == []
        export = await exports.collect(h.rt, operator_actor())
        assert export.tables["helpers"] == []


async def test_a_helper_or_a_staff_account_cannot_also_enrol_as_a_patient(engine, database_url):
    """One account, one role. A helper who taps a patient's enrolment link (or types its code)
    is told why it cannot be used, instead of getting the helper's help; a coordinator trying the
    link on their own phone likewise. Nothing is bound or spent, and the refusal is audited.
    Once the helper is removed, the same account enrols."""
    async with running_bot(engine, database_url, **ON) as h:
        _, helper, row = await helper_with_patient(h, "zh-hans", "zh_Hans", "中文", 7671)
        issued = await invitations.issue(h.rt, site_id="NJ", subject_id="NJ-7672")
        refusal = Translator("zh_Hans")._(
            "This account is already a family helper for a patient in this study, so it cannot be "
            "enrolled as a patient too. Nothing has changed. Please ask your study nurse.")
        for send in (lambda: helper.send_command("/start", issued.token), lambda: helper.send_text(issued.token)):
            count = len(helper.messages)
            send()
            await h.sandbox.wait_for(lambda: any(m.text == refusal for m in helper.messages[count:]))
        nurse = h.sandbox.user(COORDINATOR_NJ, language_code="zh-hans")
        nurse.send_command("/start", issued.token)
        staff = Translator("zh_Hans")._("This account belongs to the study team, so it cannot be enrolled as a "
                                        "patient. Nothing has changed. Use the patient's own phone.")
        await h.sandbox.wait_for(lambda: any(m.text == staff for m in nurse.messages))
        [invitation] = await h.rows(Invitation, Invitation.subject_id == "NJ-7672")
        assert invitation.used_at is None
        assert [p.subject_id for p in await h.rows(Patient)] == ["NJ-7671"]
        refused = await h.rows(AuditLog, AuditLog.action == "enrol.refused")
        assert [(r.actor_id, r.reason) for r in refused] == [
            (f"telegram:{helper.user_id}", "is_helper"), (f"telegram:{helper.user_id}", "is_helper"),
            (f"telegram:{COORDINATOR_NJ}", "is_staff")]

        await family.remove_by_coordinator(h.rt, operator_actor(), helper_id=row.helper_id, reason="enrols himself")
        count = len(helper.messages)
        helper.send_command("/start", issued.token)
        await h.sandbox.wait_for(lambda: len(helper.messages) > count and helper.last_message.buttons)
        assert "中文" in helper.last_message.button_texts[0]  # the enrolment's language question
