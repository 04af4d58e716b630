"""The study-team actions are also `adherence-bot` subcommands: plain text, exit 1 on refusal,
audited as the operator."""

from __future__ import annotations

import asyncio
import tomllib
from datetime import date, datetime, timezone

from bot import cli
from sqlmodel import select

from bot.channels.port import Account
from bot.config import settings_from_mapping
from bot.db.engine import session_factory
from bot.db.models import AuditLog, Course, Invitation, Patient
from bot.services import courses, enrolment, invitations
from bot.services.clock import FakeClock
from bot.services.runtime import Runtime
from tests.e2e.harness import EXAMPLE


async def run(capsys, *argv) -> tuple[int, str]:
    """Exit status and everything printed (stdout, then stderr)."""
    status = await asyncio.to_thread(cli.main, list(argv))
    captured = capsys.readouterr()
    return status, captured.out + captured.err


async def test_team_subcommands(engine, database_url, tmp_path, capsys):
    text = EXAMPLE.read_text("utf-8").replace('url = "sqlite+aiosqlite:///adherence.db"', f'url = "{database_url}"')
    config = tmp_path / "config.toml"
    config.write_text(text, "utf-8")
    settings = settings_from_mapping(tomllib.loads(text), env={})
    rt = Runtime(settings=settings, engine=engine, clock=FakeClock(datetime.now(timezone.utc)))
    issued = await invitations.issue(rt, site_id="NJ", subject_id="NJ-1001")
    await enrolment.complete(rt, account=Account.telegram(8001), address=str(8001), token=issued.token, locale="en",
                             reminder_time="08:00")
    open_one = await invitations.issue(rt, site_id="SH", subject_id="SH-1002")
    chemo_end = date.today()
    await courses.add_course(rt, subject_id="NJ-1001", chemo_end=chemo_end, actor_kind="operator", actor_id="cli")
    cfg = ("--config", str(config))

    status, out = await run(capsys, "patients", *cfg)
    assert status == 0 and "NJ-1001" in out and "C1" in out
    status, out = await run(capsys, "invites", "--site", "SH", *cfg)
    assert status == 0 and "SH-1002" in out and "1 open invitations" in out
    status, out = await run(capsys, "revoke", str(open_one.invitation_id), *cfg)
    assert status == 0 and "revoked" in out
    status, out = await run(capsys, "revoke", str(open_one.invitation_id), *cfg)
    assert status == 1  # already revoked
    status, out = await run(capsys, "pause", "NJ-1001", "--reason", "admitted to hospital", *cfg)
    assert status == 0 and "paused" in out
    status, out = await run(capsys, "resume", "NJ-1001", *cfg)
    assert status == 0 and "active" in out
    status, out = await run(capsys, "correct", "NJ-1001", "--chemo-end", chemo_end.isoformat(), "--reason", "x", *cfg)
    assert status == 1 and "refused: invalid" in out  # already anchored to that date
    later = date.fromordinal(chemo_end.toordinal() + 2).isoformat()
    status, out = await run(capsys, "correct", "NJ-1001", "--chemo-end", later, "--reason", "chemo delayed", *cfg)
    assert status == 0 and "cycle 1" in out
    status, out = await run(capsys, "pause", "XX-404", *cfg)
    assert status == 1
    status, out = await run(capsys, "cancel-course", "NJ-1001", "--reason", "postponed", *cfg)
    assert status == 0 and "cancelled" in out
    status, out = await run(capsys, "rebind", "NJ-1001", *cfg)
    assert status == 0 and "link: https://t.me/" in out
    status, out = await run(capsys, "withdraw", "NJ-1001", "--reason", "consent withdrawn", *cfg)
    assert status == 0 and "withdrawn" in out
    status, out = await run(capsys, "digest", "--site", "NJ", *cfg)
    assert status == 0 and "Morning digest" in out
    status, out = await run(capsys, "alerts", *cfg)
    assert status == 0 and "new_enrolment" not in out  # a notice, not an open alert

    async with session_factory(engine)() as session:
        rows = (await session.exec(select(AuditLog).where(AuditLog.actor_kind == "operator"))).all()
        patient = (await session.exec(select(Patient))).one()
        course = (await session.exec(select(Course))).one()
        revoked = await session.get(Invitation, open_one.invitation_id)
    assert {r.action for r in rows} >= {"invitation.revoked", "patient.paused", "patient.resumed", "course.cancelled",
                                        "patient.withdrawn", "invitation.issued", "course.reanchored"}
    assert patient.status == "withdrawn" and course.status == "cancelled" and revoked.revoked_by == "operator:cli"
