"""Two webhook processes of the bot (`adherence-bot run`, real OS processes) on one PostgreSQL
database: Telegram may send each update to either. A dialog started through one is finished
through the other, and an update delivered to both is handled once."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import aiohttp
import pytest

from bot.channels.port import Account
from bot.db.models import AuditLog, Patient, PatientMessage, ProcessedUpdate
from bot.sandbox import BotApiSandbox
from bot.services import enrolment, invitations
from bot.services.runtime import Runtime
from tests.dialogs.support import WEBHOOK_SECRET, free_port, process_config, rows, time_question_kept
from tests.e2e.harness import make_settings
from tests.scheduler.sched_support import BotProcess, wait_until

STRANGER, PATIENT, NURSE = 8901, 8902, 100000002  # NURSE: the NJ admin of the example config (English)


async def _listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


@asynccontextmanager
async def _processes(sandbox: BotApiSandbox, database_url: str, folder, count: int = 2):
    """`count` processes of `adherence-bot run` in webhook mode, started side by side; yields the
    URLs their webhook servers listen on."""
    ports = [free_port() for _ in range(count)]
    bots = [await BotProcess(process_config(folder / f"bot{i}.toml", sandbox, database_url, webhook_port=port),
                             sandbox).start() for i, port in enumerate(ports)]
    try:
        await asyncio.gather(*(bot.wait_ready(timeout=40) for bot in bots))
        await asyncio.gather(*(wait_until(lambda port=port: _listening(port), timeout=20,
                                          what=f"webhook server on {port}") for port in ports))
        yield [f"http://127.0.0.1:{port}/telegram" for port in ports]
    finally:
        codes = await asyncio.gather(*(bot.terminate() for bot in bots))
    for bot, code in zip(bots, codes):
        assert code == 0, bot.output[-3000:]
        assert "event=handler_error" not in bot.output, bot.output[-3000:]


@pytest.mark.postgres_only  # two processes share one database only on PostgreSQL (SQLite: one owner)
async def test_a_dialog_moves_between_two_processes_and_a_redelivery_is_handled_once(engine, database_url,
                                                                                      tmp_path):
    async with BotApiSandbox() as sandbox:
        rt = Runtime(settings=make_settings(sandbox, database_url), engine=engine)
        invitation = await invitations.issue(rt, site_id="NJ", subject_id="NJ-8901")
        enrolled = await invitations.issue(rt, site_id="NJ", subject_id="NJ-8902")
        await enrolment.complete(rt, account=Account.telegram(PATIENT), address=str(PATIENT), token=enrolled.token, locale="en",
                                 reminder_time="08:00")
        async with _processes(sandbox, database_url, tmp_path) as (a, b):
            await _journey(sandbox, rt, a, b, invitation)


async def _journey(sandbox: BotApiSandbox, rt: Runtime, a: str, b: str, invitation) -> None:
    """Each step through the process named, alternating: what one process left in the database
    the other continues."""
    assert sandbox.webhook["secret_token"] == WEBHOOK_SECRET  # each process registered its webhook
    stranger, nurse = sandbox.user(STRANGER, language_code="en"), sandbox.user(NURSE, language_code="en")

    async def on(process: str, act, until, timeout: float = 15.0):
        """Telegram delivers the next update to this process only."""
        await sandbox.wait_for(lambda: not sandbox._pending, timeout=timeout)  # the previous one is in
        sandbox.webhook["url"] = process
        act()
        await sandbox.wait_for(until, timeout=timeout)

    # enrolment, one step per process in turn: started through A, finished through B
    await on(a, lambda: stranger.send_command("/start", invitation.token),
             lambda: stranger.messages and stranger.last_message.buttons)
    question = stranger.last_message
    await on(b, lambda: stranger.press(question, "e:lang:en"), lambda: len(question.history) >= 1)
    await on(a, lambda: stranger.press(question, "e:consent:yes"), lambda: len(question.history) >= 2)
    await time_question_kept(rt)
    await on(b, lambda: stranger.send_text("07:30"),
             lambda: "Please check:" in (stranger.last_message.text or ""))
    assert question.text == "Daily reminder at 07:30 ✓"  # asked by A, closed by B
    await on(b, lambda: stranger.press(stranger.last_message, "e:confirm:yes"),
             lambda: "You are enrolled" in (stranger.messages[-2].text or ""))
    [new] = await rows(rt, Patient, Patient.account == str(STRANGER))
    assert new.reminder_time == "07:30" and new.locale == "en"

    # a coordinator's question asked through A, answered through B
    # (the processes' schedulers also write to the nurse: the new patient's notice, so wait for
    # the question itself, and for the withdrawal to be recorded)
    await on(a, lambda: nurse.send_command("/withdraw", "NJ-8902"),
             lambda: any("NJ-8902" in (m.text or "") and "/cancel" in (m.text or "") for m in nurse.messages))
    asked = len(nurse.messages)
    await on(b, lambda: nurse.send_text("moved to another city"), lambda: len(nurse.messages) > asked)
    [withdrawal] = await wait_until(lambda: rows(rt, AuditLog, AuditLog.action == "patient.withdrawn"),
                                    timeout=15, what="the withdrawal recorded")
    assert withdrawal.reason == "moved to another city"

    # the new patient's message handled by A, then redelivered to both at once: kept once, answered once
    update, before = {}, len(stranger.messages)
    await on(a, lambda: update.update(stranger.send_text("are my tablets still needed?")),
             lambda: len(stranger.messages) > before)
    replies = len(stranger.messages)
    async with aiohttp.ClientSession() as http:
        async def redeliver(url: str) -> int:
            async with http.post(url, json=update,
                                 headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}) as r:
                return r.status
        assert await asyncio.gather(redeliver(a), redeliver(b)) == [200, 200]
    await asyncio.sleep(1.5)  # time for a wrongly handled duplicate to show
    assert len(stranger.messages) == replies
    seen = await rows(rt, ProcessedUpdate, ProcessedUpdate.update_id == update["update_id"])
    assert len(seen) == 1
    [kept] = await rows(rt, PatientMessage)
    assert kept.patient_id == new.id
