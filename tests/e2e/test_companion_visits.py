"""Issue 14, part 2: blood-test and clinic visit reminders, end to end through the sandbox in
both languages: registered with /visit, reminded the day before at the patient's reminder time
and two hours before (clock injected), "I need to change it" alerts the team, an unconfirmed
visit shows in the next digest; moved, cancelled and attended visits; the CLI."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bot.channels.port import Account
from bot.db.models import Alert, AuditLog, Visit
from bot.i18n import Translator
from bot.render.coord_reports import digest_text
from bot.render.coordinator import alert_title
from bot.services import digest, exports
from bot.services.coord_access import operator_actor
from tests.coordinator.coord_helpers import nurse, send
from tests.e2e.harness import ADMIN_NJ, COORDINATOR_NJ, assert_language, running_bot
from tests.e2e.test_patient_journey import CASES, enrol

UTC = timezone.utc
ON = {"visits": {"enabled": True, "hours_before": 2}}
DAY_BEFORE = datetime(2026, 12, 3, 0, 0, tzinfo=UTC)  # 08:00 Shanghai (the patient's reminder time), Dec 3
TWO_HOURS_BEFORE = datetime(2026, 12, 4, 0, 0, tzinfo=UTC)  # 08:00 Shanghai on Dec 4, the visit at 10:00
DAY_OVER = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)  # 24:00 Shanghai on Dec 4


def visit_reminders(user):
    return [m for m in user.messages if any((d or "").startswith("vs:") for _, d in m.buttons)]


async def reminders_at(h, user, when, count):
    await h.tick(when - timedelta(minutes=1))
    assert len(visit_reminders(user)) == count - 1, "sent before its instant"
    await h.tick(when)
    await h.sandbox.wait_for(lambda: len(visit_reminders(user)) == count)
    return visit_reminders(user)[-1]


@pytest.mark.parametrize("language_code, locale, button, user_id", CASES)
async def test_reminded_day_before_and_two_hours_before_change_alerts_unconfirmed_in_digest(
        engine, database_url, language_code, locale, button, user_id):
    async with running_bot(engine, database_url, **ON) as h:
        subject = f"NJ-{user_id}"
        user, _ = await enrol(h, user_id, language_code, button, subject=subject)
        staff, staff_locale = (COORDINATOR_NJ, "zh_Hans") if locale == "zh_Hans" else (ADMIN_NJ, "en")
        coordinator = nurse(h, staff, staff_locale)
        [reply] = await send(h, coordinator, "/visit", f"{subject} 2026-12-04 10:00 blood_test")
        [visit] = await h.rows(Visit)
        assert f"#{visit.id}" in reply.text and visit.at == datetime(2026, 12, 4, 2, 0, tzinfo=UTC)
        assert await h.rows(AuditLog, AuditLog.action == "visit.registered")

        first = await reminders_at(h, user, DAY_BEFORE, 1)
        site = h.settings.site("NJ")
        assert site.name(locale) in first.text and site.phone in first.text and "10:00" in first.text
        assert ("抽血检查" if locale == "zh_Hans" else "blood test") in first.text
        second = await reminders_at(h, user, TWO_HOURS_BEFORE, 2)
        assert second is not first and "10:00" in second.text
        assert_language(user.messages, locale)

        user.press(second, next(d for _, d in second.buttons if d.endswith(":x")))  # I need to change it
        await h.sandbox.wait_for(lambda: not second.buttons)
        [alert] = await h.rows(Alert, Alert.kind == "visit_change_request")
        assert alert.level == "info" and alert.details["visit_id"] == visit.id
        title = alert_title(Translator(staff_locale), "visit_change_request")
        await h.sandbox.wait_for(lambda: any(title in (m.text or "") for m in h.sandbox.messages(staff)))
        [visit] = await h.rows(Visit)
        assert visit.patient_answer == "change"

        await h.tick(DAY_OVER + timedelta(minutes=1))  # nobody confirmed it as attended
        built = await digest.build(h.rt, site_id="NJ", now=DAY_OVER + timedelta(hours=8, minutes=30))
        text = "\n".join(digest_text(Translator("en"), h.settings, built))
        assert "Visits not confirmed as attended (1)" in text and subject in text
        [card] = await send(h, nurse(h, ADMIN_NJ, "en"), "/patient", subject)
        assert f"#{visit.id} blood test" in card.text and "not confirmed as attended" in card.text
        export = await exports.collect(h.rt, operator_actor())
        [row] = export.tables["visits"]
        assert (row["status"], row["unconfirmed"], row["patient_answer"], row["kind"]) == (
            "scheduled", "true", "change", "blood_test")
        assert str(staff) not in row["created_by"]


async def test_moved_visit_is_reminded_at_its_new_time_cancelled_is_not_and_attended_leaves_the_digest(
        engine, database_url):
    async with running_bot(engine, database_url, **ON) as h:
        user, _ = await enrol(h, 7601, "en", "English", subject="NJ-7601")
        admin = nurse(h, ADMIN_NJ, "en")
        [refusal] = await send(h, admin, "/visit", "NJ-7601 2026-12-04")
        assert "/visit SUBJECT" in refusal.text
        await send(h, admin, "/visit", "NJ-7601 2026-12-04 10:00")
        await send(h, admin, "/visit", "NJ-7601 2026-12-03 15:00 clinic_visit")
        first, second = sorted(await h.rows(Visit), key=lambda v: v.id)
        [no_reason] = await send(h, admin, "/visit", f"move {first.id} 2026-12-05 09:30")
        assert "/visit SUBJECT" in no_reason.text
        [moved] = await send(h, admin, "/visit", f"move {first.id} 2026-12-05 09:30 patient asked for Saturday")
        assert "moved" in moved.text
        [cancelled] = await send(h, admin, "/visit", f"cancel {second.id} chemotherapy postponed")
        assert "cancelled" in cancelled.text
        for hour in range(0, 24 * 5, 6):
            await h.tick(datetime(2026, 12, 1, 1, 0, tzinfo=UTC) + timedelta(hours=hour))
        texts = [m.text for m in visit_reminders(user)]
        assert len(texts) == 2 and all("09:30" in text for text in texts), texts  # Dec 4 08:00 and Dec 5 07:30
        [reply] = await send(h, admin, "/visit", f"attended {first.id}")
        assert "attended" in reply.text
        built = await digest.build(h.rt, site_id="NJ", now=datetime(2026, 12, 6, 0, 30, tzinfo=UTC))
        assert "not confirmed" not in "\n".join(digest_text(Translator("en"), h.settings, built))
        actions = {a.action for a in await h.rows(AuditLog)}
        assert {"visit.moved", "visit.cancelled", "visit.attended"} <= actions
        [audit] = await h.rows(AuditLog, AuditLog.action == "visit.moved")
        assert audit.reason == "patient asked for Saturday" and audit.before["at"] != audit.after["at"]


async def test_switched_off_visit_command_refuses(engine, database_url):
    async with running_bot(engine, database_url) as h:
        await enrol(h, 7602, "en", "English", subject="NJ-7602")
        [reply] = await send(h, nurse(h, ADMIN_NJ, "en"), "/visit", "NJ-7602 2026-12-04 10:00")
        assert "switched off" in reply.text and await h.rows(Visit) == []


async def test_the_cli_registers_moves_and_confirms_a_visit(engine, database_url, tmp_path, capsys):
    import asyncio
    import tomllib
    from datetime import date

    from bot import cli
    from bot.config import settings_from_mapping
    from bot.services import enrolment, invitations
    from bot.services.clock import FakeClock
    from bot.services.runtime import Runtime
    from tests.e2e.harness import EXAMPLE

    text = EXAMPLE.read_text("utf-8").replace('url = "sqlite+aiosqlite:///adherence.db"', f'url = "{database_url}"')
    text = text.replace("[visits]\nenabled = false", "[visits]\nenabled = true")
    config = tmp_path / "config.toml"
    config.write_text(text, "utf-8")
    rt = Runtime(settings=settings_from_mapping(tomllib.loads(text), env={}), engine=engine,
                 clock=FakeClock(datetime.now(timezone.utc)))
    issued = await invitations.issue(rt, site_id="NJ", subject_id="NJ-1101")
    await enrolment.complete(rt, account=Account.telegram(8101), address=str(8101), token=issued.token, locale="en",
                             reminder_time="08:00")
    cfg = ("--config", str(config))
    soon = date.fromordinal(date.today().toordinal() + 3).isoformat()

    async def run(*argv):
        status = await asyncio.to_thread(cli.main, list(argv))
        captured = capsys.readouterr()
        return status, captured.out + captured.err

    status, out = await run("visit", "NJ-1101", soon, "09:00", "clinic_visit", *cfg)
    assert status == 0 and "NJ-1101" in out and "clinic_visit" in out
    [visit] = await _visits(engine)
    status, out = await run("visit", "cancel", str(visit.id), *cfg)
    assert status == 1 and "refused: reason" in out
    status, out = await run("visit", "NJ-1101", soon, "9 o'clock", *cfg)
    assert status == 1 and "usage" in out
    status, out = await run("visit", "cancel", str(visit.id), "moved", "to", "the", "other", "site", *cfg)
    assert status == 0 and "cancelled" in out
    [audit] = [a for a in await _audits(engine) if a.action == "visit.cancelled"]
    assert audit.actor_kind == "operator" and audit.reason == "moved to the other site"


async def _visits(engine):
    from sqlmodel import select

    from bot.db.engine import session_factory
    async with session_factory(engine)() as session:
        return list((await session.exec(select(Visit))).all())


async def _audits(engine):
    from sqlmodel import select

    from bot.db.engine import session_factory
    async with session_factory(engine)() as session:
        return list((await session.exec(select(AuditLog))).all())
