"""`adherence-bot ack CODE`: an operator acknowledges an alert for a staff member who has only
its mail (plain text, exit 1 on a code that matches nothing, audited as the operator)."""

from __future__ import annotations

import asyncio
import tomllib
from datetime import datetime, timezone

from bot import cli
from bot.channels.port import Recipient
from bot.config import settings_from_mapping
from bot.db.models import Alert, AuditLog
from bot.services import alerts
from bot.services.alerts import raise_alert
from bot.services.runtime import Runtime
from sqlmodel import select
from tests.e2e.harness import EXAMPLE

ONCALL = "oncall@nj-hospital.example.org"


async def test_ack_subcommand(engine, database_url, tmp_path, capsys):
    text = EXAMPLE.read_text("utf-8").replace('url = "sqlite+aiosqlite:///adherence.db"', f'url = "{database_url}"')
    text = text.replace("escalation_contact = 100000009\n", f'escalation_contact = 100000009\nescalation_email = "{ONCALL}"\n')
    text = text.replace("enabled = false\nhost = \"smtp.example-hospital.cn\"", "enabled = true\nhost = \"smtp.example-hospital.cn\"")
    config = tmp_path / "config.toml"
    config.write_text(text, "utf-8")
    rt = Runtime(settings=settings_from_mapping(tomllib.loads(text), env={}), engine=engine)
    now = datetime.now(timezone.utc)
    async with rt.session() as session:
        alert = await raise_alert(session, settings=rt.settings, now=now, site_id="NJ", kind="consecutive_missed")
        code = alerts.code_for(await alerts.ack_key(session, now=now), alert_id=alert.id,
                                   recipient=Recipient.email(ONCALL))
        await session.commit()

    async def run(*argv) -> tuple[int, str]:
        status = await asyncio.to_thread(cli.main, [*argv, "--config", str(config)])
        captured = capsys.readouterr()
        return status, captured.out + captured.err

    status, out = await run("ack", f"{alert.id}-AAAAAAAAAA")
    assert status == 1 and "no alert has this code" in out
    status, out = await run("ack", code)
    assert status == 0 and out.strip() == f"alert #{alert.id} acknowledged"
    status, out = await run("ack", code)
    assert status == 0 and out.strip() == f"alert #{alert.id} was already acknowledged"
    async with rt.session() as session:
        stored = await session.get(Alert, alert.id)
        [audit] = (await session.exec(select(AuditLog).where(AuditLog.action == "alert.acknowledged"))).all()
    assert stored.acknowledged_at is not None and stored.acknowledged_by == "telegram:100000009"  # the contact's account
    assert (audit.actor_kind, audit.actor_id, audit.after["code_of"]) == ("operator", "operator:cli",
                                                                          "NJ escalation contact")


async def test_an_operator_clears_a_refused_mailbox_and_alerts_go_there_again(engine, database_url, tmp_path, capsys):
    from bot.db.models import UnreachableRecipient
    from bot.services.alerts import mark_recipient_unreachable, reachable_escalation

    text = EXAMPLE.read_text("utf-8").replace('url = "sqlite+aiosqlite:///adherence.db"', f'url = "{database_url}"')
    text = text.replace("escalation_contact = 100000009\n", f'escalation_contact = 100000009\nescalation_email = "{ONCALL}"\n')
    config = tmp_path / "config.toml"
    config.write_text(text, "utf-8")
    rt = Runtime(settings=settings_from_mapping(tomllib.loads(text), env={}), engine=engine)
    mailbox = Recipient.email(ONCALL)
    async with rt.session() as session:
        await mark_recipient_unreachable(session, settings=rt.settings, recipient=mailbox,
                                         now=datetime.now(timezone.utc), error="550 5.1.1 no such mailbox")
        await session.commit()
        assert mailbox not in await reachable_escalation(session, rt.settings.site("NJ"))

    def run(*argv) -> tuple[int, str]:
        status = cli.main([*argv, "--config", str(config)])
        captured = capsys.readouterr()
        return status, captured.out + captured.err

    status, out = await asyncio.to_thread(run, "recipient-fixed", "nobody@example.org")
    assert status == 1 and "no refused staff recipient has this address" in out
    status, out = await asyncio.to_thread(run, "recipient-fixed", ONCALL)
    assert status == 0 and out.strip() == "NJ escalation contact gets alerts again"
    async with rt.session() as session:
        assert (await session.exec(select(UnreachableRecipient))).all() == []
        assert mailbox in await reachable_escalation(session, rt.settings.site("NJ"))
        [cleared] = (await session.exec(select(AuditLog).where(AuditLog.action == "recipient.reachable"))).all()
    assert (cleared.actor_kind, cleared.actor_id) == ("operator", "operator:cli")
    assert ONCALL not in repr(cleared.after)  # named by label, never by address
