"""The morning digest for a scripted day, sent once per site and day to each coordinator in
their own language, scheduled at the configured site-local time."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from bot.channels.port import Account
from bot.db.models import Alert, DoseDay, Patient
from bot.domain.dose import Answer
from bot.handlers.coord_reports import send_site_digest
from bot.services import alerts, digest, doses, symptoms
from tests.coordinator.coord_helpers import (ADMIN_NJ, COORDINATOR_NJ, COORDINATOR_SH, enrol_direct, nurse, register,
                                             send, tr)
from tests.e2e.harness import running_bot

UTC = timezone.utc
SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


async def scripted_day(h):
    """Three NJ patients on day 1 of a course on 2 Dec: one takes it, one does not, one is silent;
    one logs a bruise, another reports blood in the urine (an open same-day alert)."""
    for user_id, subject in ((7801, "NJ-0801"), (7802, "NJ-0802"), (7803, "NJ-0803")):
        await enrol_direct(h, user_id, subject)
        await register(h, subject)
    await enrol_direct(h, 7804, "SH-0804", site="SH")
    await register(h, "SH-0804")
    for alert in await h.rows(Alert):
        await alerts.acknowledge(h.rt, alert_id=alert.id, account=Account.telegram(ADMIN_NJ))
    h.clock.set(local(1, 20))
    await symptoms.report(h.rt, account=Account.telegram(7801), codes=["few_petechiae"])  # before the previous digest
    assert await send_site_digest(h.rt, h.app.bot, site_id="NJ") > 0  # 1 Dec, 20:00: the previous digest
    await h.tick(local(2, 8))
    by_subject = {}
    for patient in await h.rows(Patient):
        [day1] = await h.rows(DoseDay, DoseDay.patient_id == patient.id, DoseDay.day == 1)
        by_subject[patient.subject_id] = day1
    h.clock.set(local(2, 8, 10))
    await doses.answer(h.rt, account=Account.telegram(7801), dose_day_id=by_subject["NJ-0801"].id, choice=Answer.TAKEN)
    await doses.answer(h.rt, account=Account.telegram(7802), dose_day_id=by_subject["NJ-0802"].id, choice=Answer.MISSED)
    h.clock.set(local(2, 12))
    await symptoms.report(h.rt, account=Account.telegram(7801), codes=["small_bruise"])
    h.clock.set(local(2, 13))
    await symptoms.report(h.rt, account=Account.telegram(7802), codes=["urine_blood"])
    await h.tick(local(3, 0))  # midnight: the silent day closes as not reported
    await h.tick(local(3, 8, 30))


async def test_digest_for_a_scripted_day(engine, database_url):
    async with running_bot(engine, database_url) as h:
        await scripted_day(h)
        built = await digest.build(h.rt, site_id="NJ")
        assert built.today == date(2026, 12, 3) and built.since == local(1, 20)
        assert [(o.subject_id, o.cycle, o.day) for o in built.on_course] == [
            ("NJ-0801", 1, 2), ("NJ-0802", 1, 2), ("NJ-0803", 1, 2)]
        assert built.yesterday == {"taken": [("NJ-0801", False)], "missed": [("NJ-0802", False)],
                                   "not_reported": [("NJ-0803", False)]}
        assert [(r.subject_id, r.level, r.symptoms) for r in built.reports] == [
            ("NJ-0801", "log", ["small_bruise"]), ("NJ-0802", "same_day", ["urine_blood"])]
        assert [(a.kind, a.details["subject_id"]) for a in built.alerts] == [("same_day_symptom", "NJ-0802")]
        assert [(s, c.taken, c.expected) for s, c in built.adherence] == [
            ("NJ-0801", 1, 1), ("NJ-0802", 0, 1), ("NJ-0803", 0, 1)]
        assert (built.total.taken, built.total.expected) == (1, 3)

        counts = {c: len(h.sandbox.messages(c)) for c in (COORDINATOR_NJ, ADMIN_NJ, COORDINATOR_SH)}
        assert await send_site_digest(h.rt, h.app.bot, site_id="NJ") == 2
        assert await send_site_digest(h.rt, h.app.bot, site_id="NJ") == 0  # once per site and day
        assert len(h.sandbox.messages(COORDINATOR_SH)) == counts[COORDINATOR_SH]
        for chat_id, locale in ((COORDINATOR_NJ, "zh_Hans"), (ADMIN_NJ, "en")):
            [text] = [m.text for m in h.sandbox.messages(chat_id)[counts[chat_id]:]]
            t = tr(locale)
            site = h.settings.site("NJ").name(locale)
            for expected in (
                t._("Morning digest: {site}, {date}", site=site, date=t.date(date(2026, 12, 3))),
                t._("On course today ({count}):", count=3),
                "• NJ-0801 " + t._("cycle {cycle}, day {day} of {total}", cycle=1, day=2, total=14),
                t._("Yesterday ({date}):", date=t.date(date(2026, 12, 2))),
                t._("taken: {names}", names="NJ-0801"),
                t._("not taken: {names}", names="NJ-0802"),
                t._("no answer: {names}", names="NJ-0803"),
                t._("Symptom reports since {when} ({count}):", when=t.datetime(local(1, 20)), count=2),
                h.settings.triage.by_code()["urine_blood"].label(locale),
                t._("Open alerts ({count}):", count=1),
                "• NJ-0801: " + t._("{rate} ({taken} of {expected} doses)", rate="100%", taken=1, expected=1),
                "• NJ-0803: " + t._("{rate} ({taken} of {expected} doses)", rate="0%", taken=0, expected=1),
                t._("Site: {ratio}", ratio=t._("{rate} ({taken} of {expected} doses)", rate="33%", taken=1,
                                               expected=3)),
            ):
                assert expected in text, (locale, expected)
            assert "SH-0804" not in text
            assert h.settings.triage.by_code()["few_petechiae"].label(locale) not in text  # before the last digest

        # the next digest starts where this one ended
        h.clock.set(local(4, 8, 30))
        assert (await digest.build(h.rt, site_id="NJ")).since == local(3, 8, 30)


async def test_digest_is_scheduled_daily_at_site_local_time(engine, database_url):
    async with running_bot(engine, database_url) as h:
        for site in ("NJ", "SH"):
            [job] = h.app.job_queue.get_jobs_by_name(f"digest:{site}")
            assert job.data == site
            assert job.next_t.astimezone(SHANGHAI).time() == time(8, 30)
            assert job.next_t - datetime.now(UTC) <= timedelta(days=1)


async def test_digest_on_demand_in_both_languages(engine, database_url):
    async with running_bot(engine, database_url) as h:
        await enrol_direct(h, 7811, "NJ-0811")
        for nurse_id, locale in ((COORDINATOR_NJ, "zh_Hans"), (ADMIN_NJ, "en")):
            coordinator = nurse(h, nurse_id, locale)
            [text] = await send(h, coordinator, "/digest")
            t = tr(locale)
            assert t._("Morning digest: {site}, {date}", site=h.settings.site("NJ").name(locale),
                       date=t.date(date(2026, 12, 1))) in text.text
        [patient] = await h.rows(Patient)
        assert patient.subject_id == "NJ-0811"
