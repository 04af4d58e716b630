"""The export a data manager can defend: manifest with correct hashes, a codebook of every code,
no Telegram id anywhere, spreadsheet-safe cells, and docs/exports.md matching the files."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import zipfile
from datetime import date, datetime, time, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.channels.port import Account
from bot.db.models import Alert
from bot.reports import csv_files
from bot.services import courses, enrolment, exports, invitations, symptoms
from bot.services.audit import audit
from bot.services.staff import keyed_hash, pseudonym_key
from bot.services.coord_access import operator_actor
from tests.coordinator.coord_helpers import ADMIN_NJ, COORDINATOR_NJ, enrol_direct, nurse, register, send, tap
from tests.e2e.harness import running_bot

UTC = timezone.utc
SHANGHAI = ZoneInfo("Asia/Shanghai")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "exports.md"
PATIENT_ID, NEW_PHONE_ID, STRANGER_ID = 9123456782, 9123456783, 9123456781
OLD_STRANGER_ID = 9123456789  # seen only in a row written before accounts (migration 0010)
NOTE = '=HYPERLINK("x")'


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), SHANGHAI).astimezone(UTC)


def documented_columns() -> dict[str, list[str]]:
    """The first column of each table under a `## <file>.csv` heading, split on commas."""
    tables: dict[str, list[str]] = {}
    current = None
    for line in DOCS.read_text("utf-8").splitlines():
        heading = re.match(r"^## (\w+)\.csv", line)
        if heading:
            current = heading.group(1)
            tables[current] = []
        elif line.startswith("## "):
            current = None
        elif current and line.startswith("| ") and not line.startswith("| column |"):
            tables[current] += [name.strip() for name in line.split("|")[1].split(",")]
    return tables


def test_the_documented_columns_are_the_written_headers():
    documented = documented_columns()
    assert documented == {**exports.COLUMNS, "codebook": exports.CODEBOOK_COLUMNS}
    for table, columns in exports.COLUMNS.items():
        header = csv_files.csv_text(table, []).lstrip("\ufeff").splitlines()[0].split(",")
        assert header == columns == documented[table], table


def test_formula_cells_are_neutralised_and_numbers_kept():
    assert csv_files.neutralise(NOTE) == "'" + NOTE
    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert csv_files.neutralise(start + "1").startswith("'")
    assert csv_files.neutralise(-2) == -2 and csv_files.neutralise("NJ-0901") == "NJ-0901"


async def test_the_export_has_a_manifest_a_codebook_and_no_telegram_id(engine, database_url):
    async with running_bot(engine, database_url) as h:
        # a patient, a rebind to a new phone, a stranger's refused button, an acknowledged alert, a note
        await enrol_direct(h, PATIENT_ID, "NJ-0951")
        await register(h, "NJ-0951")
        await h.tick(local(date(2026, 12, 2), 8))
        issued = await invitations.issue(h.rt, site_id="NJ", subject_id="NJ-0951", purpose="rebind")
        await enrolment.complete(h.rt, account=Account.telegram(NEW_PHONE_ID), address=str(NEW_PHONE_ID), token=issued.token,
                                 locale="en", reminder_time="08:00")
        stranger = h.sandbox.user(STRANGER_ID, language_code="en")
        await send(h, stranger, "/language")
        answers = len(h.sandbox.callback_answers)
        stranger.press(stranger.last_message, "e:confirm:yes")
        await h.sandbox.wait_for(lambda: len(h.sandbox.callback_answers) > answers)
        h.clock.set(local(date(2026, 12, 2), 9))
        await symptoms.report(h.rt, account=Account.telegram(NEW_PHONE_ID), codes=["black_stool"], note=NOTE)
        await h.tick()
        coordinator = nurse(h, COORDINATOR_NJ, "zh_Hans")
        [alert] = await h.rows(Alert, Alert.kind == "emergency_symptom")
        copy = await h.sandbox.wait_for(lambda: next(
            (m for m in coordinator.messages if f"a:{alert.id}" in str(m.reply_markup)), None))
        await tap(h, coordinator, copy, f"a:{alert.id}")
        await send(h, coordinator, "/pause", "NJ-0951 =cmd|' /C calc'!A0")
        await courses.cancel(h.rt, operator_actor(), subject_id="NJ-0951", cycle=1, reason="+44 wrong cycle")
        # Rows from before migration 0010 name people by bare Telegram ids (audit rows are never
        # rewritten): they are scrubbed as well, and a stranger keeps one pseudonym across both forms.
        async with h.rt.session() as session:
            audit(session, at=h.rt.now(), actor_kind="user", actor_id=str(STRANGER_ID), action="callback.rejected",
                  reason="before 0010")
            audit(session, at=h.rt.now(), actor_kind="user", actor_id=str(OLD_STRANGER_ID), action="access.refused",
                  after={"telegram_user_id": OLD_STRANGER_ID})
            audit(session, at=h.rt.now(), actor_kind="coordinator", actor_id=str(COORDINATOR_NJ),
                  action="patient.paused", entity="patient", entity_id="NJ-0951",
                  before={"telegram_user_id": PATIENT_ID}, after={"chat_id": NEW_PHONE_ID, "to": OLD_STRANGER_ID})
            await session.commit()

        admin = nurse(h, ADMIN_NJ, "en")  # an admin's export covers every site, strangers' rows included
        [document] = await send(h, admin, "/export")
        payload = document.file_bytes
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            contents = {name: archive.read(name) for name in archive.namelist()}

        # the manifest: who, when, what, and hashes that match the files
        manifest = json.loads(contents["manifest.json"])
        assert manifest["exported_by"] == "NJ data manager" and manifest["site_filter"] == "all"
        assert manifest["config"]["trial"] == h.settings.trial.name
        assert manifest["config"]["consent_version"] == h.settings.trial.consent_version
        assert manifest["software"]["version"] and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                                                                manifest["exported_at_utc"])
        assert set(manifest["files"]) == set(contents) - {"manifest.json"}
        tables = {}
        for name, entry in manifest["files"].items():
            assert entry["sha256"] == hashlib.sha256(contents[name]).hexdigest()
            rows = list(csv.DictReader(io.StringIO(contents[name].decode("utf-8-sig"))))
            assert entry["rows"] == len(rows)
            tables[name.removesuffix(".csv")] = rows

        # the codebook names every code the files use
        codes = {(r["field"], r["code"]) for r in tables["codebook"]}
        used = {("dose_days.state", r["state"]) for r in tables["dose_days"]}
        used |= {("dose_days.source", r["source"]) for r in tables["dose_days"] if r["source"]}
        used |= {("alerts.kind", r["kind"]) for r in tables["alerts"]}
        used |= {("symptom_reports.symptoms", c) for r in tables["symptom_reports"] for c in r["symptoms"].split(";")}
        used |= {("patients.pause_origin", r["pause_origin"]) for r in tables["patients"] if r["pause_origin"]}
        used |= {("dose_events.kind", r["kind"]) for r in tables["dose_events"]}
        used |= {("audit_log.actor_kind", r["actor_kind"]) for r in tables["audit_log"]}
        assert used <= codes, used - codes
        black_stool = next(r for r in tables["codebook"] if r["code"] == "black_stool")
        assert black_stool["level"] == "emergency" and black_stool["label_zh"] and black_stool["label_en"]

        # no Telegram id anywhere: every configured one and every test one
        ids = {PATIENT_ID, NEW_PHONE_ID, STRANGER_ID, OLD_STRANGER_ID}
        for site in h.settings.sites:
            ids |= {c.telegram_id for c in site.coordinators} | {site.escalation_contact, site.alert_chat_id}
        everything = b"".join(contents.values()).decode("utf-8", "replace")
        for telegram_id in ids - {0}:
            found = re.search(rf"(?<!\d){telegram_id}(?!\d)", everything)
            assert not found, everything[found.start() - 300:found.end() + 50]
        assert "NJ nurse 1" in everything and "telegram:" not in everything
        stranger_rows = [r for r in tables["audit_log"] if r["actor_kind"] == "user"]
        assert stranger_rows and all(re.fullmatch(r"anon-[0-9a-f]{12}", r["actor_id"]) for r in stranger_rows)
        [old_form] = [r for r in stranger_rows if r["reason"] == "before 0010"]
        async with h.rt.session() as session:  # the pseudonym exports gave this stranger before 0010
            before_0010 = keyed_hash(await pseudonym_key(session, now=h.rt.now()), str(STRANGER_ID))
        assert old_form["actor_id"] == before_0010
        assert before_0010 in {r["actor_id"] for r in stranger_rows if r["reason"] != "before 0010"}
        [legacy] = [r for r in tables["audit_log"] if r["action"] == "patient.paused" and r["actor_kind"] == "coordinator"
                    and "telegram_user_id" in r["before"]]
        assert legacy["actor_id"] == "NJ nurse 1" and json.loads(legacy["before"]) == {"telegram_user_id": "NJ-0951"}
        assert json.loads(legacy["after"])["chat_id"] == "NJ-0951"
        assert re.fullmatch(r"anon-[0-9a-f]{12}", json.loads(legacy["after"])["to"])
        assert [r["account_bound"] for r in tables["patients"] if r["subject_id"] == "NJ-0951"] == ["true"]
        [rebound] = [r for r in tables["audit_log"] if r["action"] == "patient.rebound"]
        assert json.loads(rebound["after"])["account"] == "NJ-0951"
        [ack] = [r for r in tables["alerts"] if r["kind"] == "emergency_symptom"]
        assert ack["acknowledged_by"] == "NJ nurse 1"

        # spreadsheet-safe text cells
        [report] = tables["symptom_reports"]
        assert report["note"] == "'" + NOTE
        assert "'+44 wrong cycle" in {r["reason"] for r in tables["audit_log"]}
        [patient] = tables["patients"]
        assert patient["pause_reason"].startswith("'=") and patient["pause_origin"] == "team"
        for rows in tables.values():
            for row in rows:
                for value in row.values():
                    assert not (value or "").startswith(("=", "+", "@", "\t", "\r")), value
                    assert not ((value or "").startswith("-") and not re.fullmatch(r"-\d+", value)), value
