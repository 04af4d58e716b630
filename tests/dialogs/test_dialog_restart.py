"""`adherence-bot run` killed with SIGKILL in the middle of three dialogs, then started again:
each continues where the person was (the dialogs live in the database, not in the process)."""

from __future__ import annotations

from bot.channels.port import Account
from bot.db.models import AuditLog, Patient, SymptomReport
from bot.i18n import Translator
from bot.sandbox import BotApiSandbox
from bot.services import enrolment, invitations
from bot.services.runtime import Runtime
from tests.dialogs.support import process_config, rows, time_question_kept
from tests.e2e.harness import make_settings
from tests.scheduler.sched_support import BotProcess, wait_until

STRANGER, PATIENT, NURSE = 8801, 8802, 100000002  # NURSE: the NJ admin of the example config (English)
MINOR = "few_petechiae"  # a log-level symptom: no alert, the report is only stored
t = Translator("en")


async def test_sigkill_mid_enrolment_symptom_pick_and_coordinator_question_then_restart_resumes(
        engine, database_url, tmp_path):
    async with BotApiSandbox() as sandbox:
        rt = Runtime(settings=make_settings(sandbox, database_url), engine=engine)
        invitation = await invitations.issue(rt, site_id="NJ", subject_id="NJ-8801")
        enrolled = await invitations.issue(rt, site_id="NJ", subject_id="NJ-8802")
        await enrolment.complete(rt, account=Account.telegram(PATIENT), address=str(PATIENT), token=enrolled.token, locale="en",
                                 reminder_time="08:00")
        config = process_config(tmp_path / "bot.toml", sandbox, database_url)
        stranger, patient, nurse = (sandbox.user(u, language_code="en") for u in (STRANGER, PATIENT, NURSE))

        first = await BotProcess(config, sandbox).start()
        try:
            await first.wait_ready()
            # 1. enrolment up to its time question
            stranger.send_command("/start", invitation.token)
            await sandbox.wait_for(lambda: stranger.messages and stranger.last_message.buttons, timeout=20)
            question = stranger.last_message
            stranger.press(question, "e:lang:en")
            await sandbox.wait_for(lambda: len(question.history) >= 1, timeout=10)
            stranger.press(question, "e:consent:yes")
            await sandbox.wait_for(lambda: len(question.history) >= 2, timeout=10)
            assert "What time should we remind you" in question.text
            await time_question_kept(rt)
            # 2. a symptom picker with one tick
            patient.send_command("/report")
            await sandbox.wait_for(lambda: patient.messages and patient.last_message.buttons, timeout=10)
            picker = patient.last_message
            patient.press(picker, f"s:{MINOR}")
            await sandbox.wait_for(lambda: any(text.startswith("☑") for text in picker.button_texts), timeout=10)
            # 3. a coordinator asked for a withdrawal reason
            nurse.send_command("/withdraw", "NJ-8802")
            await sandbox.wait_for(lambda: nurse.messages, timeout=10)
            asked = len(nurse.messages)
        finally:
            await first.kill()

        second = await BotProcess(config, sandbox).start()
        try:
            await second.wait_ready()
            stranger.send_text("07:30")  # typed: only the enrolment dialog in the database makes it a time
            await sandbox.wait_for(lambda: "Please check:" in (stranger.last_message.text or ""), timeout=20)
            assert "07:30" in stranger.last_message.text
            # the time question (its message id was kept with the dialog) now shows the answer
            await sandbox.wait_for(lambda: question.text == t._("Daily reminder at {time}", time="07:30") + " ✓")
            stranger.press(stranger.last_message, "e:confirm:yes")
            await wait_until(lambda: rows(rt, Patient, Patient.account == str(STRANGER)), timeout=10,
                             what="enrolled after the restart")

            send = next(data for _, data in picker.buttons if (data or "").startswith("s:_send"))
            patient.press(picker, send)  # the tick survived in the picker's own buttons
            reports = await wait_until(lambda: rows(rt, SymptomReport), timeout=10, what="report saved")
            assert [report.symptoms for report in reports] == [[MINOR]]

            nurse.send_text("moved to another city")
            await wait_until(lambda: rows(rt, Patient, Patient.subject_id == "NJ-8802", Patient.status == "withdrawn"),
                             timeout=10, what="withdrawn with the reason typed after the restart")
            [withdrawal] = await rows(rt, AuditLog, AuditLog.action == "patient.withdrawn")
            assert withdrawal.reason == "moved to another city"
            assert len(nurse.messages) > asked
        finally:
            assert await second.terminate() == 0, second.output[-3000:]
