"""Two webhook instances of the bot on one database (PostgreSQL in production): Telegram may send
each update to either. A dialog started on one continues on the other, and an update delivered
to both is handled once."""

from __future__ import annotations

import asyncio
import socket
from contextlib import AsyncExitStack, asynccontextmanager

import aiohttp

from bot.channels.port import Account
from bot.app import build_application
from bot.db.engine import make_engine
from bot.db.models import AuditLog, Patient, PatientMessage, ProcessedUpdate
from bot.sandbox import BotApiSandbox
from bot.services import enrolment, invitations
from bot.services.runtime import Runtime
from tests.dialogs.support import rows, time_question_kept
from tests.e2e.harness import make_settings

SECRET = "two-instances-secret-0123456789abcdef"
STRANGER, PATIENT, NURSE = 8901, 8902, 100000002  # NURSE: the NJ admin of the example config (English)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@asynccontextmanager
async def _instance(sandbox: BotApiSandbox, database_url: str):
    """One bot instance: its own engine (connection pool), Application and webhook server."""
    engine = make_engine(database_url)
    app = build_application(make_settings(sandbox, database_url), engine=engine, scheduler_enabled=False)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/telegram"
    await app.initialize()
    await app.start()
    await app.updater.start_webhook(listen="127.0.0.1", port=port, url_path="telegram", webhook_url=url,
                                    secret_token=SECRET)
    try:
        yield url
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
        await engine.dispose()


async def test_a_dialog_moves_between_two_instances_and_a_redelivery_is_handled_once(engine, database_url):
    async with BotApiSandbox() as sandbox, AsyncExitStack() as stack:
        rt = Runtime(settings=make_settings(sandbox, database_url), engine=engine)
        invitation = await invitations.issue(rt, site_id="NJ", subject_id="NJ-8901")
        enrolled = await invitations.issue(rt, site_id="NJ", subject_id="NJ-8902")
        await enrolment.complete(rt, account=Account.telegram(PATIENT), address=str(PATIENT), token=enrolled.token, locale="en",
                                 reminder_time="08:00")
        a = await stack.enter_async_context(_instance(sandbox, database_url))
        b = await stack.enter_async_context(_instance(sandbox, database_url))
        stranger, nurse = sandbox.user(STRANGER, language_code="en"), sandbox.user(NURSE, language_code="en")

        async def on(instance: str, act, until, timeout: float = 10.0):
            """Telegram delivers the next update to this instance only."""
            sandbox.webhook["url"] = instance
            act()
            await sandbox.wait_for(until, timeout=timeout)

        # enrolment, one step per instance in turn
        await on(a, lambda: stranger.send_command("/start", invitation.token),
                 lambda: stranger.messages and stranger.last_message.buttons)
        question = stranger.last_message
        await on(b, lambda: stranger.press(question, "e:lang:en"), lambda: len(question.history) >= 1)
        await on(a, lambda: stranger.press(question, "e:consent:yes"), lambda: len(question.history) >= 2)
        await time_question_kept(rt)
        await on(b, lambda: stranger.send_text("07:30"),
                 lambda: "Please check:" in (stranger.last_message.text or ""))
        assert question.text == "Daily reminder at 07:30 ✓"  # asked by A, closed by B
        await on(a, lambda: stranger.press(stranger.last_message, "e:confirm:yes"),
                 lambda: "You are enrolled" in (stranger.messages[-2].text or ""))
        [new] = await rows(rt, Patient, Patient.account == str(STRANGER))
        assert new.reminder_time == "07:30" and new.locale == "en"

        # a coordinator's question asked by A, answered on B
        await on(a, lambda: nurse.send_command("/withdraw", "NJ-8902"), lambda: nurse.messages)
        asked = len(nurse.messages)
        await on(b, lambda: nurse.send_text("moved to another city"), lambda: len(nurse.messages) > asked)
        [withdrawal] = await rows(rt, AuditLog, AuditLog.action == "patient.withdrawn")
        assert withdrawal.reason == "moved to another city"

        # the new patient's message handled by A, then redelivered to both at once: kept once, answered once
        update, before = {}, len(stranger.messages)
        await on(a, lambda: update.update(stranger.send_text("are my tablets still needed?")),
                 lambda: len(stranger.messages) > before)
        replies = len(stranger.messages)
        async with aiohttp.ClientSession() as http:
            async def redeliver(url: str) -> int:
                async with http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as r:
                    return r.status
            assert await asyncio.gather(redeliver(a), redeliver(b)) == [200, 200]
        await asyncio.sleep(1.0)  # time for a wrongly handled duplicate to show
        assert len(stranger.messages) == replies
        seen = await rows(rt, ProcessedUpdate, ProcessedUpdate.update_id == update["update_id"])
        assert len(seen) == 1
        [kept] = await rows(rt, PatientMessage)
        assert kept.patient_id == new.id
