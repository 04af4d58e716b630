"""How the lifecycle's queries are written where the planner once went wrong: PostgreSQL without
fresh statistics (right after a bulk load) probed the whole dose-day index once per patient when a
query joined patients to due days directly (20-40 s at start-up over 140,000 future days; measured
by `make bench`, start-up). Both the reminder query and the EXISTS flag the lifecycle asks first
must read the due days on their own, materialised, before joining their patients."""

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql, sqlite

from scheduler import lifecycle
from tests.db.migration_support import database_at

NOW = datetime(2026, 12, 2, 0, 0, tzinfo=timezone.utc)


def test_the_reminder_query_and_its_flag_read_the_due_days_materialised_first():
    _, flags = lifecycle._work_statement(14, with_outbox=True)
    for dialect in (postgresql.dialect(), sqlite.dialect()):
        for statement in (flags, lifecycle._reminders_due(NOW)):
            sql = " ".join(str(statement.compile(dialect=dialect)).split())
            assert sql.startswith("WITH due_days AS MATERIALIZED (SELECT dose_day.id AS id FROM dose_day WHERE"), sql[:120]
            assert "JOIN due_days ON due_days.id = dose_day.id" in sql


def test_the_catch_up_and_course_end_queries_read_their_days_materialised_first():
    _, flags = lifecycle._work_statement(14, with_outbox=False)
    bounds = lifecycle._bounds(NOW)
    catch_ups = lifecycle._catch_ups_due(NOW, closed_after=bounds["closed_after"], created_after=bounds["created_after"])
    ended = lifecycle._courses_ended(14, NOW, ended_after=bounds["ended_after"])
    for dialect in (postgresql.dialect(), sqlite.dialect()):
        flags_sql = " ".join(str(flags.compile(dialect=dialect)).split())
        for statement, cte in ((catch_ups, "late_courses AS MATERIALIZED (SELECT DISTINCT dose_day.course_id"),
                               (ended, "ended_days AS MATERIALIZED (SELECT dose_day.id AS id FROM dose_day WHERE")):
            sql = " ".join(str(statement.compile(dialect=dialect)).split())
            assert sql.startswith(f"WITH {cte}"), sql[:120]
            assert cte in flags_sql


# --- on a real PostgreSQL database, right after a bulk load (no statistics yet) -----------------
PATIENTS = 3000
BULK_LOAD = [
    "INSERT INTO patient (id, subject_id, site_id, channel, account, address, locale, timezone, reminder_time, status, "
    "unreachable, enrolled_at, created_at) SELECT g, 'NJ-P' || g, 'NJ', 'telegram', g::text, g::text, 'en', "
    "'Asia/Shanghai', '08:00', 'active', false, :created, :created FROM generate_series(1, :n) g",
    # Every course registered two days ago (so each is a candidate for a catch-up), starting tomorrow.
    "INSERT INTO course (id, patient_id, cycle, chemo_end, first_day, last_day, status, source, confirmed, created_at, "
    "created_by) SELECT g, g, 1, DATE '2026-12-02', DATE '2026-12-03', DATE '2026-12-16', 'active', 'cli', true, "
    ":created, 'test' FROM generate_series(1, :n) g",
    "INSERT INTO dose_day (patient_id, course_id, cycle, day, local_date, due_at, closes_at, late_until, state, late, "
    "snoozes) SELECT p, p, 1, d, DATE '2026-12-02' + d, CAST(:first AS TIMESTAMPTZ) + (d - 1) * INTERVAL '1 day', "
    "CAST(:first AS TIMESTAMPTZ) + (d - 1) * INTERVAL '1 day' + INTERVAL '15 hours', "
    "CAST(:first AS TIMESTAMPTZ) + (d - 1) * INTERVAL '1 day' + INTERVAL '39 hours', "
    "'scheduled', false, 0 FROM generate_series(1, :n) p, generate_series(1, 14) d",
]


def _walk(plan: dict) -> list[dict]:
    return [plan] + [node for child in plan.get("Plans", []) for node in _walk(child)]


async def _plan(connection, statement, params) -> list[dict]:
    expanded = statement.compile(dialect=connection.dialect).construct_expanded_state(params)
    plan = (await connection.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + expanded.statement,
                                             expanded.positional_parameters)).scalar_one()
    return _walk(plan[0]["Plan"])


def _heavy(nodes: list[dict]) -> list[tuple]:
    """Nodes run once per patient or course, or reading thousands of rows."""
    return [(n["Node Type"], n.get("Index Name"), n["Actual Rows"], n["Actual Loops"]) for n in nodes
            if n["Actual Loops"] >= 100 or n["Actual Rows"] * n["Actual Loops"] >= 1000]


@pytest.mark.postgres_only
async def test_the_lifecycle_queries_read_few_rows_on_a_freshly_loaded_postgresql(tmp_path):
    """What start-up runs over 3,000 patients with 42,000 future days: the lifecycle's flags and
    the next wake-up. Before the forms above and the indexes of migration 0011, the course-end and
    catch-up checks ran once per course, and the next due reminder was found by reading every
    future day.
    Right after the load (no statistics yet: autovacuum has not run) the flags must already be
    cheap (their old forms took 20-40 s at start-up over 140,000 days); once statistics exist
    (autovacuum gathers them within a minute), the next wake-up too."""
    async with database_at(tmp_path, "head") as engine:  # not the run's database: its dead rows count in index scans
        await _bulk_load_and_explain(engine)


async def _bulk_load_and_explain(engine) -> None:
    first = NOW + timedelta(days=1)
    async with engine.begin() as connection:
        for statement in BULK_LOAD:
            await connection.execute(text(statement), {"n": PATIENTS, "created": NOW - timedelta(days=2), "first": first})
    _, flags = lifecycle._work_statement(14, with_outbox=True)
    captured = {}

    class Capture:  # next_due builds its one statement and hands it to the session
        async def exec(self, statement, **_):
            captured["next_due"] = statement
            return type("Row", (), {"one": lambda self: (None,) * 6})()

    await lifecycle.next_due(Capture(), now=NOW, with_overdue=True)
    flag_params = {"now": NOW, **lifecycle._bounds(NOW)}
    async with engine.connect() as connection:
        assert _heavy(await _plan(connection, flags, flag_params)) == []
        await connection.exec_driver_sql("ANALYZE")
        await connection.commit()
        assert _heavy(await _plan(connection, flags, flag_params)) == []
        assert _heavy(await _plan(connection, captured["next_due"], {})) == []
