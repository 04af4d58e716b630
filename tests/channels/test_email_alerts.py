"""Staff alerts by email, against a real local SMTP server (aiosmtpd): alerts go by Telegram and
by mail per the site's `alert_channels`; a mail names only the subject id, level and symptom
labels, with a code that acknowledges the alert (`/ack CODE` in Telegram, `adherence-bot ack`);
repeats stop once anyone acknowledges; an email-only escalation contact is paged by mail; SMTP
failures follow the same retry / unknown / refused policy as Telegram."""

from __future__ import annotations

import asyncio
import re
import time
import tomllib
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone

import pytest

from bot.channels.port import Account
from bot.config import deployment_problems, settings_from_mapping
from bot.db.models import Alert, Outbox, UnreachableRecipient
from bot.sandbox import BotApiSandbox
from bot.services import alerts, messages, symptoms
from bot.services.clock import FakeClock
from tests.channels.smtp_server import SmtpServer, wait_until
from tests.coordinator.coord_helpers import (ADMIN_NJ, COORDINATOR_NJ, ESCALATION_NJ, audits, enrol_direct, nurse,
                                             register, send, tap, tr)
from tests.e2e.harness import EXAMPLE, Harness

UTC = timezone.utc
T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai, day 1 of the course
NURSE_MAIL = "nurse1@nj-hospital.example.org"
ONCALL_MAIL = "oncall@nj-hospital.example.org"
NOTE = "Wang Li 13800138000 ate pork"


def _settings(sandbox, database_url, smtp: SmtpServer, **site):
    data = tomllib.loads(EXAMPLE.read_text("utf-8"))
    data["telegram"].update(token=sandbox.token, base_url=sandbox.base_url, bot_username=sandbox.bot_username)
    data["database"]["url"] = database_url
    data["delivery"].update(sweep_seconds=3600, send_timeout_seconds=2, global_per_second=500, per_chat_per_second=50)
    data["email"] = smtp.settings()
    nj = data["sites"][0]
    nj["coordinators"][0]["email"] = NURSE_MAIL  # the zh_Hans nurse; the admin has no address
    nj.update({"alert_channels": ["telegram", "email"], "escalation_email": ONCALL_MAIL, **site})
    settings = settings_from_mapping(data, env={})
    assert deployment_problems(settings, sandbox=True) == []
    return settings


@asynccontextmanager
async def bot_with_mail(engine, database_url, smtp: SmtpServer, **site):
    async with BotApiSandbox() as sandbox:
        h = Harness(sandbox, _settings(sandbox, database_url, smtp, **site), engine, FakeClock(T0))
        await h.start()
        try:
            yield h
        finally:
            await h.stop()


async def _emergency(h, user_id: int = 7601, subject: str = "NJ-0601") -> Alert:
    await enrol_direct(h, user_id, subject, locale="en")
    await register(h, subject)
    await h.tick()
    await symptoms.report(h.rt, account=Account.telegram(user_id), codes=["black_stool"])
    [alert] = await h.rows(Alert, Alert.kind == "emergency_symptom")
    return alert


def _copies(h, chat_id: int, alert: Alert):
    return [m for m in h.sandbox.messages(chat_id) if f"a:{alert.id}" in str(m.reply_markup) + str(m.history)]


def _mails(smtp: SmtpServer, address: str, alert: Alert):
    """This alert's mails to one address (notices such as the new enrolment are mailed too)."""
    return [m for m in smtp.mailbox.to(address) if f"/ack {alert.id}-" in m.get_content()]


def _code(mail) -> str:
    return re.search(r"/ack (\S+)", mail.get_content()).group(1)


async def _mail_rows(h, address: str, kind: str = "emergency_symptom") -> list[Outbox]:
    alerts = {a.id for a in await h.rows(Alert, Alert.kind == kind)}
    return [r for r in await h.rows(Outbox, Outbox.channel == "email", Outbox.address == address)
            if r.alert_id in alerts]


async def test_an_alert_is_mailed_without_health_detail_and_a_telegram_ack_stops_the_mails(engine, database_url):
    with SmtpServer() as smtp:
        async with bot_with_mail(engine, database_url, smtp) as h:
            alert = await _emergency(h)
            await h.tick(T0)
            [mail] = await wait_until(lambda: _mails(smtp, NURSE_MAIL, alert))
            await h.sandbox.wait_for(lambda: _copies(h, COORDINATOR_NJ, alert) and _copies(h, ADMIN_NJ, alert))
            zh = tr("zh_Hans")  # the nurse reads Chinese
            body = mail.get_content()
            assert mail["Subject"] == zh._("[{trial}] {level} alert: {subject}", trial="NCT07101627",
                                           level=zh._("EMERGENCY"), subject="NJ-0601")
            assert h.settings.triage.by_code()["black_stool"].label("zh_Hans") in body
            assert mail["From"] == "adherence-bot@example.org" and mail["Auto-Submitted"] == "auto-generated"
            [row] = await _mail_rows(h, NURSE_MAIL)
            assert row.state == "sent" and row.lane == "alert" and row.message_id is None

            await h.tick(T0 + timedelta(minutes=5))  # not acknowledged: the repeat goes by mail too
            await wait_until(lambda: len(_mails(smtp, NURSE_MAIL, alert)) == 2)
            repeat = _mails(smtp, NURSE_MAIL, alert)[1].get_content()
            assert zh._("Still not acknowledged (reminder {number}, first raised at {time})", number=2,
                        time=zh.time(T0)) in repeat
            assert _code(_mails(smtp, NURSE_MAIL, alert)[1]) == _code(mail)  # one code per recipient and alert

            h.clock.set(T0 + timedelta(minutes=6))
            await tap(h, nurse(h, ADMIN_NJ, "en"), _copies(h, ADMIN_NJ, alert)[-1], f"a:{alert.id}")
            for minutes in (10, 15, 20, 30):  # past the repeat and the escalation times
                await h.tick(T0 + timedelta(minutes=minutes))
            assert len(_mails(smtp, NURSE_MAIL, alert)) == 2 and _mails(smtp, ONCALL_MAIL, alert) == []
            assert all(r.state == "sent" for r in await _mail_rows(h, NURSE_MAIL))


async def test_a_mail_waiting_for_its_retry_is_dropped_once_the_alert_is_acknowledged_in_telegram(engine,
                                                                                               database_url):
    with SmtpServer() as smtp:
        async with bot_with_mail(engine, database_url, smtp) as h:
            smtp.mailbox.data_reply = "451 4.3.0 try later"  # the relay defers every mail for now
            alert = await _emergency(h)
            await h.tick(T0)
            [row] = await _settled_mail_rows(h, kind="emergency_symptom")
            assert row.state == "pending" and row.attempts == 1  # to be retried
            await h.sandbox.wait_for(lambda: _copies(h, ADMIN_NJ, alert))
            h.clock.set(T0 + timedelta(seconds=30))
            await tap(h, nurse(h, ADMIN_NJ, "en"), _copies(h, ADMIN_NJ, alert)[-1], f"a:{alert.id}")
            smtp.mailbox.data_reply = None  # the relay is back
            await h.tick(T0 + timedelta(minutes=1))
            [row] = await _mail_rows(h, NURSE_MAIL)
            assert (row.state, row.last_error) == ("skipped", "alert already acknowledged")
            assert _mails(smtp, NURSE_MAIL, alert) == []


async def test_the_patients_own_words_stay_out_of_the_mail(engine, database_url):
    with SmtpServer() as smtp:
        async with bot_with_mail(engine, database_url, smtp) as h:
            await enrol_direct(h, 7602, "NJ-0602", locale="en")
            await messages.receive(h.rt, account=Account.telegram(7602), kind="text", text=NOTE, channel_message_id=None)
            [alert] = await h.rows(Alert, Alert.kind == "patient_message")
            await h.tick(T0)
            [mail] = await wait_until(lambda: _mails(smtp, NURSE_MAIL, alert))
            await h.sandbox.wait_for(lambda: _copies(h, COORDINATOR_NJ, alert))
            assert NOTE in _copies(h, COORDINATOR_NJ, alert)[0].text  # Telegram shows the words …
            for private in ("Wang", "13800138000", "pork"):  # … the mail never does
                assert private not in mail.get_content() and private not in mail["Subject"]
            assert "NJ-0602" in mail["Subject"]


async def test_the_code_in_the_mail_acknowledges_the_alert_from_telegram_once(engine, database_url):
    with SmtpServer() as smtp:
        async with bot_with_mail(engine, database_url, smtp) as h:
            alert = await _emergency(h)
            await h.tick(T0)
            [mail] = await wait_until(lambda: _mails(smtp, NURSE_MAIL, alert))
            code = _code(mail)
            await h.sandbox.wait_for(lambda: _copies(h, COORDINATOR_NJ, alert))
            en = tr("en")
            patient = h.sandbox.user(7601, language_code="en")
            [refused] = await send(h, patient, "ack", code)  # a code alone does not make a patient staff
            assert refused.text == en._("Only this site's coordinators can acknowledge this alert.")
            forged = code[:-1] + ("A" if code[-1] != "A" else "B")
            admin = nurse(h, ADMIN_NJ, "en")
            [wrong] = await send(h, admin, "ack", forged)
            assert wrong.text == en._("This code matches no alert. Check it against the mail.")
            assert (await h.rows(Alert, Alert.id == alert.id))[0].acknowledged_at is None

            [done] = await send(h, admin, "ack", code.lower())  # case does not matter
            assert done.text == en._("Acknowledged.")
            [stored] = await h.rows(Alert, Alert.id == alert.id)
            assert stored.acknowledged_by == f"telegram:{ADMIN_NJ}" and stored.next_repeat_at is None
            [audit] = await audits(h, "alert.acknowledged", entity_id=alert.id)
            assert audit.after == {"via": "code", "code_of": "NJ nurse 1"}
            await h.sandbox.wait_for(lambda: all(m.reply_markup is None for m in _copies(h, COORDINATOR_NJ, alert)))
            [again] = await send(h, admin, "ack", code)  # single use: it changes nothing the second time
            assert again.text == en._("Already acknowledged.")
            assert len(await audits(h, "access.refused", entity_id=alert.id)) == 2


async def test_an_email_only_escalation_contact_is_paged_and_acknowledges_through_the_operator(engine, database_url):
    with SmtpServer() as smtp:
        async with bot_with_mail(engine, database_url, smtp, alert_channels=["telegram"],
                                 escalation_contact=0) as h:
            alert = await _emergency(h)
            await h.tick(T0)
            await h.sandbox.wait_for(lambda: _copies(h, COORDINATOR_NJ, alert))
            assert smtp.mailbox.to(NURSE_MAIL) == []  # the site's copies go by Telegram only
            await h.tick(T0 + timedelta(minutes=15))  # nobody acknowledged: escalated, by mail
            [paged] = await wait_until(lambda: _mails(smtp, ONCALL_MAIL, alert))
            zh = tr("zh_Hans")
            assert zh._("ESCALATED: not acknowledged in time") in paged.get_content()
            assert _copies(h, ESCALATION_NJ, alert) == []  # no Telegram id configured for the contact
            await h.tick(T0 + timedelta(minutes=20))  # escalated repeats page the contact by mail too
            await wait_until(lambda: len(_mails(smtp, ONCALL_MAIL, alert)) == 2)

            wrong = await alerts.acknowledge_by_code(h.rt, code=f"{alert.id}-AAAAAAAAAA", operator="operator:cli")
            assert wrong.status == "invalid"
            done = await alerts.acknowledge_by_code(h.rt, code=_code(paged), operator="operator:cli")
            assert done.status == "acknowledged" and done.alert.acknowledged_by is None
            [audit] = await audits(h, "alert.acknowledged", entity_id=alert.id)
            assert (audit.actor_kind, audit.actor_id) == ("operator", "operator:cli")
            assert audit.after["code_of"] == "NJ escalation contact"
            await h.tick(T0 + timedelta(minutes=30))
            assert len(_mails(smtp, ONCALL_MAIL, alert)) == 2
            # no chat saw the acknowledgement, yet every Telegram copy (the repeat too) stops asking for one
            acknowledged = "✅ " + zh._("Acknowledged by {who} at {when}", who="—", when=zh.datetime(done.alert.acknowledged_at))
            copies = _copies(h, COORDINATOR_NJ, alert)
            await h.sandbox.wait_for(lambda: copies and all(acknowledged in (m.text or "") and not m.buttons
                                                            for m in copies))


@pytest.mark.parametrize("fault, state, unreachable", [
    ("no_server", "pending", False),  # connection refused: certainly not delivered, retried
    ("rcpt_451", "pending", False),  # the relay defers: retried
    ("data_451", "pending", False),
    ("rcpt_550", "failed", True),  # no such mailbox: the recipient is gone
    ("data_554", "failed", False),  # the message itself refused: a bug on our side, not retried
    ("data_timeout", "unknown", False),  # handed over, no answer: maybe delivered, never resent
])
async def test_smtp_failures_follow_the_delivery_policy(engine, database_url, fault, state, unreachable):
    with SmtpServer() as smtp:
        async with bot_with_mail(engine, database_url, smtp, alert_channels=["email"]) as h:
            mailbox = smtp.mailbox
            if fault == "no_server":
                smtp.stop()
            elif fault.startswith("rcpt"):
                mailbox.rcpt_reply = {"rcpt_451": "451 4.3.2 try later", "rcpt_550": "550 5.1.1 no such mailbox"}[fault]
            elif fault == "data_timeout":
                mailbox.data_delay = 2.5  # the client gives up after 1 s
            else:
                mailbox.data_reply = {"data_451": "451 4.3.0 try later", "data_554": "554 5.6.0 refused"}[fault]
            await enrol_direct(h, 7601, "NJ-0601", locale="en")  # the team is told by a notice …
            await h.tick(T0)
            [row] = await _settled_mail_rows(h)  # … which is the first mail
            assert row.state == state, row.last_error
            assert row.attempts == 1
            if state == "pending":
                assert row.due_at > T0 and row.last_error.startswith("not delivered")
            gone = await h.rows(UnreachableRecipient, UnreachableRecipient.channel == "email")
            # (a refused nurse leaves the notice with nobody: it escalates to the on-call mailbox, refused too)
            assert (NURSE_MAIL in {r.address for r in gone}) if unreachable else gone == []
            if unreachable:
                assert await audits(h, "recipient.unreachable")
            assert "password" not in (row.last_error or "").lower()


async def _settled_mail_rows(h, kind: str = "new_enrolment", timeout: float = 10.0) -> list[Outbox]:
    """The mail rows once each has had its attempt (a retry waits on the fake clock, so it stays put)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await _mail_rows(h, NURSE_MAIL, kind=kind)
        if rows and all(r.attempts >= 1 and r.state not in ("claimed", "sending") for r in rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"mail rows did not settle: {[(r.state, r.attempts) for r in rows]}")
        await asyncio.sleep(0.05)
