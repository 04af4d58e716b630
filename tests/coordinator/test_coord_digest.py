"""The morning digest for a scripted day, queued once per site and day at the configured
site-local time as outbox rows, one per coordinator, each in their own language, and delivered
by the courier with the outbox policy."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

from bot.db.models import Alert, DoseDay, Outbox, Patient
from bot.channels.port import Account
from bot.domain.dose import Answer
from bot.services import alerts, digest, doses, symptoms
from tests.coordinator.coord_helpers import (ADMIN_NJ, COORDINATOR_NJ, COORDINATOR_SH, enrol_direct, nurse, register,
                                             send, tr)
from tests.e2e.harness import running_bot

UTC = timezone.utc
SHANGHAI = ZoneInfo("Asia/Shanghai")
NJ_READERS = (COORDINATOR_NJ, ADMIN_NJ)  # site NJ has no alert chat: each coordinator privately


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def counts(h, chats=(COORDINATOR_NJ, ADMIN_NJ, COORDINATOR_SH)) -> dict[int, int]:
    return {c: len(h.sandbox.messages(c)) for c in chats}


def new_texts(h, chat_id: int, before: dict[int, int]) -> list[str]:
    return [m.text for m in h.sandbox.messages(chat_id)[before[chat_id]:]]


async def digest_rows(h, site: str = "NJ") -> list[Outbox]:
    return [r for r in await h.rows(Outbox, Outbox.kind == "digest") if r.payload["site"] == site]


async def scripted_day(h):
    """Three NJ patients on day 1 of a course on 2 Dec: one takes it, one does not, one is silent;
    one logs a bruise, another reports blood in the urine (an open same-day alert). The bot runs
    from 08:00 on 1 Dec, so the digest of 1 Dec goes out at 08:30 on the scheduler's own."""
    for user_id, subject in ((7801, "NJ-0801"), (7802, "NJ-0802"), (7803, "NJ-0803")):
        await enrol_direct(h, user_id, subject)
        await register(h, subject)
    await enrol_direct(h, 7804, "SH-0804", site="SH")
    await register(h, "SH-0804")
    for alert in await h.rows(Alert):
        await alerts.acknowledge(h.rt, alert_id=alert.id, account=Account.telegram(ADMIN_NJ))
    h.clock.set(local(1, 8, 10))
    await symptoms.report(h.rt, account=Account.telegram(7801), codes=["few_petechiae"])  # before the previous digest
    before = counts(h)
    await h.tick(local(1, 8, 30))  # 1 Dec, 08:30: the previous digest
    assert all(new_texts(h, chat, before) for chat in NJ_READERS)
    await h.tick(local(2, 8))
    by_subject = {}
    for patient in await h.rows(Patient):
        [day1] = await h.rows(DoseDay, DoseDay.patient_id == patient.id, DoseDay.day == 1)
        by_subject[patient.subject_id] = day1
    h.clock.set(local(2, 8, 10))
    await doses.answer(h.rt, account=Account.telegram(7801), dose_day_id=by_subject["NJ-0801"].id, choice=Answer.TAKEN)
    await doses.answer(h.rt, account=Account.telegram(7802), dose_day_id=by_subject["NJ-0802"].id, choice=Answer.MISSED)
    h.clock.set(local(2, 12))  # 2 Dec's digest time passed without a pass: not sent late
    await symptoms.report(h.rt, account=Account.telegram(7801), codes=["small_bruise"])
    h.clock.set(local(2, 13))
    await symptoms.report(h.rt, account=Account.telegram(7802), codes=["urine_blood"])
    await h.tick(local(3, 0))  # midnight: the silent day closes as not reported
    await h.tick(local(3, 8, 29))  # a minute early: nothing yet


async def test_digest_for_a_scripted_day(engine, database_url):
    async with running_bot(engine, database_url, start=local(1, 8), digests=True) as h:
        await scripted_day(h)
        assert {r.payload["day"] for r in await digest_rows(h)} == {"2026-12-01"}  # 2 Dec's was not due awake
        built = await digest.build(h.rt, site_id="NJ")
        assert built.today == date(2026, 12, 3) and built.since == local(1, 8, 30)
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

        before = counts(h)
        await h.tick(local(3, 8, 30))  # the site-local digest time
        for chat_id, locale in ((COORDINATOR_NJ, "zh_Hans"), (ADMIN_NJ, "en")):
            [text] = new_texts(h, chat_id, before)
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
                t._("Symptom reports since {when} ({count}):", when=t.datetime(local(1, 8, 30)), count=2),
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
        [sh_text] = new_texts(h, COORDINATOR_SH, before)  # site SH's own digest, at the same local time
        assert "SH-0804" in sh_text and "NJ-080" not in sh_text

        # recorded in the outbox: one row per reader, sent, keyed by site, local day and reader
        rows = [r for r in await digest_rows(h) if r.payload["day"] == "2026-12-03"]
        assert sorted(int(r.address) for r in rows) == sorted(NJ_READERS)
        assert all(r.state == "sent" and r.lane == "normal" and r.message_id and r.due_at == local(3, 8, 30)
                   and r.dedupe_key.startswith("digest:NJ:2026-12-03:") for r in rows)

        # a restart after it was sent does not send it again
        after = counts(h)
        await h.restart()
        await h.tick(local(3, 8, 40))
        await h.tick(local(3, 12))
        assert counts(h) == after
        assert len([r for r in await digest_rows(h) if r.payload["day"] == "2026-12-03"]) == 2

        # the next digest starts where this one ended
        h.clock.set(local(4, 8, 0))
        assert (await digest.build(h.rt, site_id="NJ")).since == local(3, 8, 30)


async def test_digest_waits_for_its_site_local_time(engine, database_url):
    async with running_bot(engine, database_url, start=local(2, 8), digests=True) as h:
        await enrol_direct(h, 7821, "NJ-0821")
        await h.tick()  # the team's enrolment notice goes out
        assert await h.scheduler.next_due() == local(2, 8, 30)  # the scheduler wakes for it
        before = counts(h)
        await h.tick(local(2, 8, 29))
        assert counts(h) == before and await digest_rows(h) == []
        await h.tick(local(2, 8, 30))
        assert all(len(new_texts(h, chat, before)) == 1 for chat in (*NJ_READERS, COORDINATOR_SH))
        assert await h.scheduler.next_due() == local(3, 8, 30)


async def test_a_digest_follows_the_outbox_policy_on_bot_api_faults(engine, database_url):
    """5xx: certainly not delivered, retried with backoff; an answer lost after Telegram accepted
    the message: unknown, never resent."""
    async with running_bot(engine, database_url, start=local(2, 8), digests=True) as h:
        h.sandbox.inject_fault(kind="server_error", chat_id=ADMIN_NJ, method="sendMessage")
        h.sandbox.inject_fault(kind="timeout_after_accept", chat_id=COORDINATOR_NJ, method="sendMessage", delay=4)
        before = counts(h)
        await h.tick(local(2, 8, 30))
        rows = {int(r.address): r for r in await digest_rows(h)}
        assert rows[ADMIN_NJ].state == "pending" and rows[ADMIN_NJ].attempts == 1
        assert rows[ADMIN_NJ].due_at > local(2, 8, 30) and "not delivered" in (rows[ADMIN_NJ].last_error or "")
        assert rows[COORDINATOR_NJ].state == "unknown"
        assert new_texts(h, ADMIN_NJ, before) == [] and len(new_texts(h, COORDINATOR_NJ, before)) == 1
        await h.tick(local(2, 8, 35))
        rows = {int(r.address): r for r in await digest_rows(h)}
        assert rows[ADMIN_NJ].state == "sent" and rows[ADMIN_NJ].attempts == 2
        assert rows[COORDINATOR_NJ].state == "unknown"
        assert len(new_texts(h, ADMIN_NJ, before)) == 1 and len(new_texts(h, COORDINATOR_NJ, before)) == 1


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
