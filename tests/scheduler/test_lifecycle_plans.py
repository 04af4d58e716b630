"""How the lifecycle's queries are written where the planner once went wrong: PostgreSQL without
fresh statistics (right after a bulk load) probed the whole dose-day index once per patient when a
query joined patients to due days directly (20-40 s at start-up over 140,000 future days; measured
by `make bench`, start-up). Both the reminder query and the EXISTS flag the lifecycle asks first
must read the due days on their own, materialised, before joining their patients."""

from datetime import datetime, timezone

from sqlalchemy.dialects import postgresql, sqlite

from scheduler import lifecycle

NOW = datetime(2026, 12, 2, 0, 0, tzinfo=timezone.utc)


def test_the_reminder_query_and_its_flag_read_the_due_days_materialised_first():
    _, flags = lifecycle._work_statement(14, with_outbox=True)
    for dialect in (postgresql.dialect(), sqlite.dialect()):
        for statement in (flags, lifecycle._reminders_due(NOW)):
            sql = " ".join(str(statement.compile(dialect=dialect)).split())
            assert sql.startswith("WITH due_days AS MATERIALIZED (SELECT dose_day.id AS id FROM dose_day WHERE"), sql[:120]
            assert "JOIN due_days ON due_days.id = dose_day.id" in sql
