"""The emergency path under faults (DESIGN.md §1): whatever single call fails, the patient sees
120 and the site phone, the report and its alert are stored, and a person on the team is paged."""

from __future__ import annotations

import asyncio
import tomllib
from datetime import timedelta

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.db.models import Alert, AuditLog, Outbox, SymptomReport, UnreachableRecipient
from bot.health import check
from bot.i18n import Translator
from bot.render.coordinator import alert_title
from bot.services.symptoms import ADVICE_KIND
from tests.e2e.harness import ADMIN_NJ, COORDINATOR_NJ, EXAMPLE, assert_language, running_bot
from tests.e2e.test_patient_days import enrolled_with_course

NJ_PHONE = "+86-25-0000-0000"
SH_PHONE = "+86-21-0000-0000"
ESCALATION_NJ = 100000009


def emergency_alert_for(h, chat_id: int, subject: str, locale: str = "zh_Hans"):
    """The emergency alert itself for this subject (not just any message) in this chat."""
    title = alert_title(Translator(locale), "emergency_symptom")
    return [m for m in h.sandbox.messages(chat_id) if title in (m.text or "") and subject in (m.text or "")]


def advice_messages(user):
    return [m for m in user.messages if "120" in (m.text or "") and NJ_PHONE in (m.text or "")
            and m.text.startswith("🚨")]


async def open_picker(h, user):
    user.send_command("/report")
    await h.sandbox.wait_for(lambda: user.last_message.buttons and user.last_message.buttons[-1][1] == "s:_cancel")
    return user.last_message


async def tick_symptom(h, user, picker, code: str):
    edits = len(picker.history)
    user.press(picker, f"s:{code}")
    await h.sandbox.wait_for(lambda: len(picker.history) > edits)


def send_button(picker) -> str:
    return picker.buttons[-2][1]


FAULTS = {
    "answer_callback_500": dict(kind="server_error", method="answerCallbackQuery", times=None),
    "advice_send_500": dict(kind="server_error", method="sendMessage", times=1),
    "advice_timeout_after_accept": dict(kind="timeout_after_accept", method="sendMessage", times=1, delay=3),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("language_code, locale, button, user_id", [("zh-hans", "zh_Hans", "中文", 8101),
                                                                    ("en", "en", "English", 8102)])
async def test_emergency_send_survives_a_telegram_fault(engine, database_url, fault, language_code, locale, button,
                                                        user_id):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, language_code, button, user_id)
        subject = f"NJ-{user_id}"
        picker = await open_picker(h, user)
        await tick_symptom(h, user, picker, "black_stool")
        h.sandbox.inject_fault(chat_id=user_id if "advice" in fault else None, **FAULTS[fault])
        user.press(picker, send_button(picker))
        # A person on the team gets the emergency alert itself.
        await h.sandbox.wait_for(lambda: emergency_alert_for(h, COORDINATOR_NJ, subject), timeout=10)
        # The patient has the advice (retried from the outbox where the first send failed).
        await h.sandbox.wait_for(lambda: advice_messages(user), timeout=10)
        reports = await h.rows(SymptomReport)
        assert [(r.level, r.symptoms) for r in reports] == [("emergency", ["black_stool"])]
        assert len(await h.rows(Alert, Alert.kind == "emergency_symptom")) == 1
        await h.sandbox.wait_for(lambda: "✅" in (picker.text or ""), timeout=10)  # the confirmation, after both
        [advice_row] = await h.rows(Outbox, Outbox.kind == ADVICE_KIND)
        if fault == "answer_callback_500":
            assert advice_row.state == "sent" and advice_row.attempts == 1  # shown by the handler, no retry
        else:  # the handler's send failed or timed out: the courier sent it again at once
            await h.sandbox.wait_for(lambda: len(advice_messages(user)) == (2 if "timeout" in fault else 1))
            for _ in range(100):
                [advice_row] = await h.rows(Outbox, Outbox.kind == ADVICE_KIND)
                if advice_row.state == "sent":
                    break
                await asyncio.sleep(0.05)
            assert advice_row.state == "sent" and "handler send failed" in advice_row.last_error
        h.sandbox.clear_faults()
        assert_language([m for m in user.messages if m.text], locale)


async def test_database_down_patient_still_gets_120_phone_and_one_honest_reply(engine, database_url, monkeypatch):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, "en", "English", 8201)
        picker = await open_picker(h, user)  # the bot has seen this patient: it knows their site
        await tick_symptom(h, user, picker, "black_stool")

        def down(*args, **kwargs):
            raise OperationalError("SELECT", {}, Exception("could not connect to server"))

        for method in ("exec", "execute", "get", "commit", "flush"):
            monkeypatch.setattr(AsyncSession, method, down)
        count = len(user.messages)
        user.press(picker, send_button(picker))
        await h.sandbox.wait_for(lambda: "NOT received" in (picker.text or ""))
        advice = user.messages[count]
        assert "120" in advice.text and NJ_PHONE in advice.text and SH_PHONE not in advice.text
        assert "✅" not in picker.text and "120" in picker.text and NJ_PHONE in picker.text
        assert not emergency_alert_for(h, COORDINATOR_NJ, "NJ-8201")

        # The menu button opens the picker without the database, and says nothing twice.
        count = len(user.messages)
        user.send_text("⚠ Report a symptom")
        await h.sandbox.wait_for(lambda: len(user.messages) > count)
        await asyncio.sleep(1)
        [reply] = user.messages[count:]
        assert reply.buttons and reply.buttons[-1][1] == "s:_cancel"

        # Anything else fails once, with 120 and the phone in the one reply.
        count = len(user.messages)
        user.send_command("/status")
        await h.sandbox.wait_for(lambda: len(user.messages) > count)
        await asyncio.sleep(1)
        [reply] = user.messages[count:]
        assert "120" in reply.text and NJ_PHONE in reply.text
        monkeypatch.undo()
        assert await h.rows(SymptomReport) == []


async def test_database_down_after_a_restart_shows_every_site_phone(engine, database_url, monkeypatch):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, "en", "English", 8211)
        await h.restart()  # a new process: it has not seen this patient yet

        def down(*args, **kwargs):
            raise OperationalError("SELECT", {}, Exception("could not connect to server"))

        for method in ("exec", "execute", "get", "commit", "flush"):
            monkeypatch.setattr(AsyncSession, method, down)
        picker = await open_picker(h, user)
        await tick_symptom(h, user, picker, "vomit_blood")
        count = len(user.messages)
        user.press(picker, send_button(picker))
        await h.sandbox.wait_for(lambda: "NOT received" in (picker.text or ""))
        advice = user.messages[count]
        assert "120" in advice.text and NJ_PHONE in advice.text and SH_PHONE in advice.text
        monkeypatch.undo()


def sole_coordinator_settings(data: dict) -> None:
    nj = data["sites"][0]
    nj["coordinators"] = [c for c in nj["coordinators"] if c["telegram_id"] == COORDINATOR_NJ]


@pytest.fixture
def sole_coordinator(monkeypatch):
    """Site NJ with one coordinator (and its escalation contact)."""
    import tests.e2e.harness as harness

    original = tomllib.loads

    def loads(text, *args, **kwargs):
        data = original(text, *args, **kwargs)
        if text == EXAMPLE.read_text("utf-8"):
            sole_coordinator_settings(data)
        return data

    monkeypatch.setattr(harness.tomllib, "loads", loads)


async def test_sole_coordinator_blocked_escalates_at_once_and_fails_health(engine, database_url, sole_coordinator,
                                                                          caplog):
    async with running_bot(engine, database_url) as h:
        assert [c.telegram_id for c in h.settings.site("NJ").coordinators] == [COORDINATOR_NJ]
        user = await enrolled_with_course(h, "en", "English", 8301)
        h.sandbox.inject_fault(kind="blocked", chat_id=COORDINATOR_NJ, times=None)
        picker = await open_picker(h, user)
        await tick_symptom(h, user, picker, "black_stool")
        started = h.clock.now()
        user.press(picker, send_button(picker))
        # Not 15 minutes later: at once, with the clock standing still.
        await h.sandbox.wait_for(lambda: emergency_alert_for(h, ESCALATION_NJ, "NJ-8301"), timeout=10)
        assert h.clock.now() == started
        [alert] = await h.rows(Alert, Alert.kind == "emergency_symptom")
        assert alert.escalated_at == started
        assert await h.rows(AuditLog, AuditLog.action == "recipient.unreachable")
        assert await h.rows(AuditLog, AuditLog.action == "alert.escalated")
        assert [r.address for r in await h.rows(UnreachableRecipient)] == [str(COORDINATOR_NJ)]
        assert any(r.levelname in ("ERROR", "CRITICAL") and "alert_recipient_unreachable" in r.getMessage()
                   for r in caplog.records)
        ok, message = await check(h.settings, now=h.clock.now())
        assert not ok and "NJ" in message and "no reachable alert recipient" in message

        # The escalation contact blocks us too (found by the next repeat): a new report says the
        # team could not be reached, and gives the phone, instead of "sent".
        h.sandbox.inject_fault(kind="blocked", chat_id=ESCALATION_NJ, times=None)
        await h.tick(started + timedelta(minutes=6))
        await h.sandbox.wait_for(lambda: any(c.method == "sendMessage" and c.chat_id == ESCALATION_NJ
                                             and c.status == 403 for c in h.sandbox.calls))
        for _ in range(100):
            if len(await h.rows(UnreachableRecipient)) == 2:
                break
            await asyncio.sleep(0.05)
        assert {r.address for r in await h.rows(UnreachableRecipient)} == {str(COORDINATOR_NJ), str(ESCALATION_NJ)}
        picker = await open_picker(h, user)
        await tick_symptom(h, user, picker, "urine_blood")  # same day: a new alert, nobody to take it
        user.press(picker, send_button(picker))
        await h.sandbox.wait_for(lambda: "could not reach" in (picker.text or ""))
        assert "✅" not in picker.text and NJ_PHONE in picker.text
        assert any(r.levelname == "CRITICAL" and "alert_reaches_nobody" in r.getMessage() for r in caplog.records)
        h.sandbox.clear_faults()


async def test_a_blocked_coordinator_is_reachable_again_when_they_write(engine, database_url, sole_coordinator):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, "en", "English", 8311)
        h.sandbox.inject_fault(kind="blocked", chat_id=COORDINATOR_NJ, times=1)
        picker = await open_picker(h, user)
        await tick_symptom(h, user, picker, "black_stool")
        user.press(picker, send_button(picker))
        await h.sandbox.wait_for(lambda: emergency_alert_for(h, ESCALATION_NJ, "NJ-8311"), timeout=10)
        coordinator = h.sandbox.user(COORDINATOR_NJ, language_code="zh-hans")
        coordinator.send_command("/alerts")
        await h.sandbox.wait_for(lambda: coordinator.messages)
        await h.sandbox.wait_for(lambda: True)
        for _ in range(50):
            if not await h.rows(UnreachableRecipient):
                break
            await asyncio.sleep(0.05)
        assert await h.rows(UnreachableRecipient) == []
        assert await h.rows(AuditLog, AuditLog.action == "recipient.reachable")


async def test_reports_beyond_the_hourly_limit_are_kept_merged_and_answered_with_the_advice(engine, database_url):
    async with running_bot(engine, database_url, alerts={"max_reports_per_hour": 2}) as h:
        user = await enrolled_with_course(h, "en", "English", 8401)
        for n in range(3):
            picker = await open_picker(h, user)
            await tick_symptom(h, user, picker, "black_stool" if n < 2 else "fainting")
            count = len(advice_messages(user))
            user.press(picker, send_button(picker))
            await h.sandbox.wait_for(lambda: len(picker.history) >= 2 and len(advice_messages(user)) > count)
        assert "several reports" in picker.text and "120" in picker.text and NJ_PHONE in picker.text
        assert "✅" not in picker.text
        assert len(await h.rows(SymptomReport)) == 3  # nothing the patient reported is lost
        [alert] = await h.rows(Alert, Alert.kind == "emergency_symptom")
        assert len(alert.details["report_ids"]) == 3 and alert.details["symptoms"] == ["black_stool", "fainting"]
        throttled = [r for r in await h.rows(AuditLog, AuditLog.action == "symptom.reported") if r.after["throttled"]]
        assert len(throttled) == 1
