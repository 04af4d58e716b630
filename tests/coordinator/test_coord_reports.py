"""/export: CSV files that match the database and whose audit log reconstructs the scripted
history, the same files from the CLI; /report: the chart has one row per patient on a course
and one column per course day."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import tomllib
import zipfile
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest
import zxingcpp
from PIL import Image

from bot import cli
from bot.channels.port import Account
from bot.db.models import Alert, AuditLog, Course, DoseDay, Patient, SymptomReport
from bot.domain.dose import Answer
from bot.reports import chart
from bot.services import doses, enrolment, exports, symptoms
from tests.coordinator.coord_helpers import (ADMIN_NJ, COORDINATOR_NJ, NURSE_IDS, NURSES, enrol_direct, nurse, register,
                                             send, tap, tr)
from tests.e2e.harness import EXAMPLE, running_bot

UTC = timezone.utc
SHANGHAI = ZoneInfo("Asia/Shanghai")
FORBIDDEN = ("arm", "treatment", "placebo", "randomi", "allocation", "blind")


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def read_zip(payload: bytes) -> dict[str, list[dict]]:
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        return {name.removesuffix(".csv"): list(csv.DictReader(io.StringIO(archive.read(name).decode("utf-8-sig"))))
                for name in archive.namelist() if name.endswith(".csv")}


async def scripted_history(h, coordinator):
    """Invite → enrol → register (confirmed) → day 1 taken, day 2 missed, day 3 silent →
    an emergency report acknowledged by the coordinator."""
    [photo] = await send(h, coordinator, "/invite", "NJ-0901")
    [code] = zxingcpp.read_barcodes(Image.open(io.BytesIO(photo.file_bytes)))
    await enrolment.complete(h.rt, account=Account.telegram(7901), address=str(7901), token=code.text.split("start=")[1],
                             locale="zh_Hans", reminder_time="08:00")
    [preview] = await send(h, coordinator, "/cycle", "NJ-0901 2026-12-01")
    await tap(h, coordinator, preview, preview.buttons[0][1])
    await h.sandbox.wait_for(lambda: preview.reply_markup is None)
    await enrol_direct(h, 7902, "NJ-0902")  # enrolled, no course yet
    await enrol_direct(h, 7903, "SH-0903", site="SH")  # another site: not in an NJ-only export
    await register(h, "SH-0903")
    for day, choice in ((2, Answer.TAKEN), (3, Answer.MISSED), (4, None)):
        await h.tick(local(day, 8))
        [dose] = await h.rows(DoseDay, DoseDay.local_date == date(2026, 12, day), DoseDay.patient_id == 1)
        if choice:
            h.clock.set(local(day, 8, 20))
            await doses.answer(h.rt, account=Account.telegram(7901), dose_day_id=dose.id, choice=choice)
    await h.tick(local(5, 0))  # day 3 (4 Dec) closes unanswered
    h.clock.set(local(5, 9))
    await symptoms.report(h.rt, account=Account.telegram(7901), codes=["black_stool"])
    await h.tick(local(5, 9))
    [alert] = await h.rows(Alert, Alert.kind == "emergency_symptom")
    copy = await h.sandbox.wait_for(lambda: next(
        (m for m in coordinator.messages if f"a:{alert.id}" in str(m.reply_markup)), None))
    h.clock.set(local(5, 9, 4))
    await tap(h, coordinator, copy, f"a:{alert.id}")
    await h.sandbox.wait_for(lambda: copy.reply_markup is None)


def replay(audit_rows: list[dict]) -> dict:
    """Rebuild the trial's state from the audit log alone."""
    state = {"patients": {}, "courses": {}, "doses": {}, "alerts": {}, "invitations": {}}
    for row in audit_rows:
        after = json.loads(row["after"]) if row["after"] else {}
        action, entity_id = row["action"], row["entity_id"]
        if action == "invitation.issued":
            state["invitations"][entity_id] = "issued"
        elif action == "invitation.used":
            state["invitations"][entity_id] = "used"
        elif action in ("patient.enrolled", "patient.rebound"):
            state["patients"][entity_id] = "active"
        elif action in ("patient.paused", "patient.resumed", "patient.withdrawn"):
            state["patients"][entity_id] = after["status"]
        elif action == "course.registered":
            state["courses"][entity_id] = (after["subject_id"], after["cycle"], after["first_day"], after["last_day"])
        elif action == "dose.answered":
            state["doses"][entity_id] = (after["state"], after["late"])
        elif action == "dose.closed_not_reported":
            state["doses"][entity_id] = ("not_reported", False)
        elif action == "alert.raised":
            state["alerts"][entity_id] = (after["kind"], None)
        elif action == "alert.acknowledged":
            state["alerts"][entity_id] = (state["alerts"][entity_id][0], row["actor_id"])
    return state


@pytest.mark.parametrize("nurse_id, locale", NURSES, ids=NURSE_IDS)
async def test_export_matches_database_and_audit_reconstructs_history(engine, database_url, nurse_id, locale,
                                                                      tmp_path):
    async with running_bot(engine, database_url) as h:
        coordinator = nurse(h, nurse_id, locale)
        await scripted_history(h, coordinator)
        audit_before = await h.rows(AuditLog)
        [document] = await send(h, coordinator, "/export", "NJ")
        assert document.kind == "document" and document.filename.endswith(".zip")
        assert tr(locale)._("Data export: {site}", site=h.settings.site("NJ").name(locale)) in document.text
        files = read_zip(document.file_bytes)
        assert set(files) == set(exports.COLUMNS) | {"codebook"}
        label = {COORDINATOR_NJ: "NJ nurse 1", ADMIN_NJ: "NJ data manager"}[nurse_id]  # staff by label, not id
        for table in exports.COLUMNS:  # documented columns, in order; none could hint at an arm
            with zipfile.ZipFile(io.BytesIO(document.file_bytes)) as archive:
                header = archive.read(f"{table}.csv").decode("utf-8-sig").splitlines()[0].split(",")
            assert header == exports.COLUMNS[table]
            assert not [c for c in header if any(word in c for word in FORBIDDEN)]

        patients = {p.subject_id: p for p in await h.rows(Patient) if p.site_id == "NJ"}
        assert {r["subject_id"]: r["status"] for r in files["patients"]} == {s: p.status for s, p in patients.items()}
        assert {r["subject_id"] for r in files["courses"]} == {"NJ-0901"}
        [course] = await h.rows(Course, Course.patient_id == patients["NJ-0901"].id)
        [course_row] = files["courses"]
        assert (course_row["first_day"], course_row["last_day"], course_row["source"]) == (
            "2026-12-02", "2026-12-15", "coordinator") == (course.first_day.isoformat(), course.last_day.isoformat(),
                                                           course.source)
        db_days = {str(d.id): d for d in await h.rows(DoseDay, DoseDay.patient_id == patients["NJ-0901"].id)}
        assert {r["dose_day_id"] for r in files["dose_days"]} == set(db_days)
        for row in files["dose_days"]:
            dose = db_days[row["dose_day_id"]]
            assert row["state"] == dose.state and row["late"] == str(dose.late).lower()
            assert row["scheduled_at_utc"] == exports.utc(dose.due_at)
            assert row["answered_at_utc"] == exports.utc(dose.answered_at)
        by_day = {int(r["day"]): r for r in files["dose_days"]}
        assert by_day[1]["scheduled_at_local"] == "2026-12-02T08:00:00+08:00"
        assert by_day[1]["scheduled_at_utc"] == "2026-12-02T00:00:00Z"
        assert (by_day[1]["state"], by_day[1]["answered_at_local"], by_day[1]["source"]) == (
            "taken", "2026-12-02T08:20:00+08:00", "button")
        assert by_day[1]["recorded_at_utc"] == "2026-12-02T00:20:00Z"
        assert by_day[2]["state"] == "missed"
        assert (by_day[3]["state"], by_day[3]["recorded_at_local"]) == ("not_reported", "2026-12-05T00:00:00+08:00")
        [report] = await h.rows(SymptomReport)
        assert files["symptom_reports"] == [{
            "report_id": str(report.id), "subject_id": "NJ-0901", "site_id": "NJ",
            "reported_at_utc": exports.utc(report.reported_at), "reported_at_local": "2026-12-05T09:00:00+08:00",
            "level": "emergency", "symptoms": "black_stool", "note": "", "reported_by": "patient",
            "update_id": ""}]
        emergency = next(r for r in files["alerts"] if r["kind"] == "emergency_symptom")
        assert (emergency["acknowledged_by"], emergency["acknowledged_at_local"], emergency["minutes_to_acknowledge"]) \
            == (label, "2026-12-05T09:04:00+08:00", "4.0")
        # the audit log: every NJ row up to the export, in order, and it replays to the database's state
        nj_audit_ids = [r["audit_id"] for r in files["audit_log"]]
        assert nj_audit_ids == sorted(nj_audit_ids, key=int)
        assert set(nj_audit_ids) <= {str(r.id) for r in audit_before}
        assert not any("SH-0903" in r["after"] or r["entity_id"] == "SH-0903" for r in files["audit_log"])
        state = replay(files["audit_log"])
        assert state["patients"] == {"NJ-0901": "active", "NJ-0902": "active"}
        assert list(state["courses"].values()) == [("NJ-0901", 1, "2026-12-02", "2026-12-15")]
        assert {k: v[0] for k, v in state["doses"].items()} == {
            str(d.id): d.state for d in db_days.values() if d.state != "scheduled"}
        assert state["alerts"][emergency["alert_id"]] == ("emergency_symptom", label)
        assert set(state["invitations"].values()) == {"used"}
        history = [r["action"] for r in files["audit_log"] if "NJ-0901" in (r["entity_id"], r["actor_id"])
                   or (json.loads(r["after"]) if r["after"] else {}).get("subject_id") == "NJ-0901"]
        assert history == ["invitation.issued", "invitation.used", "consent.given", "patient.enrolled", "alert.raised",
                           "course.registered", "dose.answered", "dose.answered", "dose.closed_not_reported",
                           "alert.raised", "symptom.reported", "alert.raised"]  # two silent days, then the report
        assert max(await h.rows(AuditLog), key=lambda r: r.id).action == "export.created"

        # the CLI writes the same files
        config = tmp_path / "config.toml"
        assert tomllib.loads(EXAMPLE.read_text("utf-8"))["database"]["url"] == "sqlite+aiosqlite:///adherence.db"
        config.write_text(EXAMPLE.read_text("utf-8").replace('url = "sqlite+aiosqlite:///adherence.db"',
                                                             f'url = "{database_url}"'), "utf-8")
        out = tmp_path / "export"
        status = await asyncio.to_thread(cli.main, ["export", "--out", str(out), "--site", "NJ",
                                                    "--config", str(config)])
        assert status == 0
        for table in exports.COLUMNS:
            written = list(csv.DictReader(io.StringIO((out / f"{table}.csv").read_text("utf-8-sig"))))
            if table == "audit_log":  # the CLI's copy also holds the Telegram export's own audit row
                assert written[:len(files[table])] == files[table]
                assert written[-1]["action"] == "export.created"
            elif table != "invitations":
                assert written == files[table], table


@pytest.mark.parametrize("nurse_id, locale", NURSES, ids=NURSE_IDS)
async def test_report_chart_rows_and_columns(engine, database_url, nurse_id, locale):
    async with running_bot(engine, database_url) as h:
        for n in range(3):
            await enrol_direct(h, 7911 + n, f"NJ-091{n}")
            await register(h, f"NJ-091{n}")
        await enrol_direct(h, 7919, "NJ-0919")  # no course yet: no row
        await h.tick(local(2, 8))
        h.clock.set(local(2, 9))
        [dose] = await h.rows(DoseDay, DoseDay.patient_id == 1, DoseDay.day == 1)
        await doses.answer(h.rt, account=Account.telegram(7911), dose_day_id=dose.id, choice=Answer.TAKEN)
        coordinator = nurse(h, nurse_id, locale)
        [photo] = await send(h, coordinator, "/report")
        assert photo.kind == "photo"
        t = tr(locale)
        assert t._("Adherence: {site}", site=h.settings.site("NJ").name(locale)) in photo.text
        assert t._("Patients: {count}, on course today: {on_course}", count=4, on_course=3) in photo.text
        # the figure's own geometry: 3 patients × 14 course days, labelled by subject and cycle
        rows = [chart.ChartRow(f"NJ-091{n} C1", ["taken" if n == 0 else "scheduled"] + ["scheduled"] * 13, 1)
                for n in range(3)]
        figure = chart.build_figure(rows, columns=14, t=t, site=h.settings.site("NJ"), day=date(2026, 12, 2))
        assert Image.open(io.BytesIO(photo.file_bytes)).size == figure.canvas.get_width_height()
        assert figure.canvas.get_width_height()[0] == 1200
        axes = figure.axes[0]
        [image_artist] = axes.get_images()
        assert image_artist.get_array().shape == (3, 14)
        assert [label.get_text() for label in axes.get_yticklabels()] == ["NJ-0910 C1", "NJ-0911 C1", "NJ-0912 C1"]
        assert [label.get_text() for label in axes.get_xticklabels()] == [str(d) for d in range(1, 15)]
        assert image_artist.get_array()[0][0] == chart.TAKEN and image_artist.get_array()[1][0] == chart.SCHEDULED
        assert len(axes.patches) == 3  # today's cell outlined in each row
        labels = chart.label_translator(t, h.settings.site("NJ"), date(2026, 12, 2))
        assert figure.texts[0].get_text() == chart.title_of(labels, h.settings.site("NJ"), date(2026, 12, 2))
        assert labels.locale == locale  # the bundled font draws Chinese on any machine


def test_chart_pages_keep_a_phone_readable_size():
    rows = [chart.ChartRow(f"SH-{n:03d} C2", ["taken", "missed", "not_reported"], 4) for n in range(60)]
    site = type("Site", (), {"name": lambda self, locale: "Site"})()
    pages = chart.render_pages(rows, columns=14, t=tr("en"), site=site, day=date(2026, 12, 2))
    assert [len(p.rows) for p in pages] == [25, 25, 10]
    assert all(len(p.matrix) == len(p.rows) and all(len(r) == 14 for r in p.matrix) for p in pages)
    assert pages[0].matrix[0][:4] == [chart.TAKEN, chart.MISSED, chart.NOT_REPORTED, chart.NONE]
    for page in pages:
        assert Image.open(io.BytesIO(page.png)).size == (page.width_px, page.height_px)
        assert page.height_px / page.width_px < 20 and page.width_px + page.height_px < 10000
