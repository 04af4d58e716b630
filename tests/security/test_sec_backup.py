"""Backup/restore drill: back up a populated database, restore it into a fresh one, and the
export of the restored copy is identical to the export of the original."""

from __future__ import annotations

import sqlite3
import subprocess
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import text

from bot.channels.port import Account
from bot.db.audit_chain import verify
from bot.db.engine import make_engine
from bot.domain.dose import Answer
from bot.reports import csv_files
from bot.services import courses, doses, enrolment, invitations, symptoms
from bot.services.clock import FakeClock
from bot.services.coord_access import operator_actor
from bot.services.exports import collect
from bot.services.runtime import Runtime
from tests.conftest import ON_POSTGRES
from tests.e2e.harness import EXAMPLE

import tomllib

from bot.config import settings_from_mapping

UTC = timezone.utc


def _settings(url: str):
    data = tomllib.loads(EXAMPLE.read_text("utf-8"))
    data["database"]["url"] = url
    return settings_from_mapping(data, env={})


async def _populate(rt: Runtime, clock: FakeClock) -> None:
    for user_id, subject in ((8801, "NJ-881"), (8802, "NJ-882")):
        issued = await invitations.issue(rt, site_id="NJ", subject_id=subject)
        await enrolment.complete(rt, account=Account.telegram(user_id), address=str(user_id), token=issued.token, locale="en",
                                 reminder_time="08:00")
        await courses.add_course(rt, subject_id=subject, chemo_end=date(2026, 12, 1), actor_kind="operator",
                               actor_id="test")
    clock.set(datetime(2026, 12, 2, 1, 0, tzinfo=UTC))
    async with rt.session() as session:
        first = (await session.exec(text("SELECT id FROM dose_day ORDER BY id LIMIT 1"))).one()[0]
    await doses.answer(rt, account=Account.telegram(8801), dose_day_id=first, choice=Answer.TAKEN)
    await symptoms.report(rt, account=Account.telegram(8802), codes=["urine_blood"], note="since this morning")


async def _export(url: str, clock: FakeClock, out) -> dict[str, bytes]:
    engine = make_engine(url)
    try:
        rt = Runtime(settings=_settings(url), engine=engine, clock=clock)
        data = await collect(rt, operator_actor())
    finally:
        await engine.dispose()
    paths = csv_files.write_directory(data, out)
    return {p.name: p.read_bytes() for p in paths}


def _restore_postgres(run, name: str) -> str:
    """pg_dump the run's database (as its owner) and pg_restore it into a new database `name`."""
    owner = run.owner_url.replace("postgresql+asyncpg://", "postgresql://")
    door = run.url_of("postgres").replace("postgresql+asyncpg://", "postgresql://")
    subprocess.run(["psql", door, "-q", "-c", f'CREATE DATABASE "{name}"'], check=True, capture_output=True)
    dump = subprocess.run(["pg_dump", "--format=custom", owner], check=True, capture_output=True).stdout
    subprocess.run(["pg_restore", "--no-owner", "--dbname", run.url_of(name).replace("postgresql+asyncpg://",
                                                                                    "postgresql://")],
                   input=dump, check=True, capture_output=True)
    return run.url_of(name)


def _drop_postgres(run, name: str) -> None:
    door = run.url_of("postgres").replace("postgresql+asyncpg://", "postgresql://")
    subprocess.run(["psql", door, "-q", "-c", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], check=True,
                   capture_output=True)


async def test_backup_restore_export_is_identical(engine, database_url, tmp_path, request):
    clock = FakeClock(datetime(2026, 12, 1, 1, 0, tzinfo=UTC))
    await _populate(Runtime(settings=_settings(database_url), engine=engine, clock=clock), clock)
    await engine.dispose()
    if ON_POSTGRES:
        run = request.getfixturevalue("postgres_run")
        name = f"{run.name}_restored"  # unique per run, like the run's own database
        request.addfinalizer(lambda: _drop_postgres(run, name))
        restored_url = _restore_postgres(run, name)
    else:  # SQLite's online backup API, as docs/operations.md describes
        source_path = database_url.split(":///", 1)[1]
        target_path = tmp_path / "restored.db"
        with sqlite3.connect(source_path) as source, sqlite3.connect(target_path) as target:
            source.backup(target)
        restored_url = f"sqlite+aiosqlite:///{target_path}"
    clock.advance(timedelta(hours=1))
    original = await _export(database_url, clock, tmp_path / "original")
    restored = await _export(restored_url, clock, tmp_path / "restored")
    assert {"patients.csv", "dose_days.csv", "symptom_reports.csv", "audit_log.csv"} <= set(original)
    assert original == restored
    restored_engine = make_engine(restored_url)
    try:
        chain = await verify(restored_engine)  # the audit trail survives backup and restore intact
    finally:
        await restored_engine.dispose()
    assert chain.ok and chain.rows > 5, chain.problem
    assert b"NJ-881" in original["patients.csv"] and b"urine_blood" in original["symptom_reports.csv"]
