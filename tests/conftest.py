"""Shared fixtures. The whole suite runs on SQLite by default and on PostgreSQL when
TEST_DATABASE_URL is set (`make test` does both).

On PostgreSQL each run creates its own uniquely named database (and runtime role) on
TEST_DATABASE_URL's server, migrates it, runs the bot as the runtime role, and drops both at
the end, also when tests fail: two runs on one host never meet, and no database the suite did
not create is ever written to."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import hypothesis
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

import bot.db.models  # noqa: F401  (the tables, in foreign-key order, for emptying them)
from bot.db.engine import is_sqlite, make_engine, normalize_url
from bot.db.migrate import upgrade
from bot.db.roles import apply_runtime_grants

# As bot.app.build_application sets it for the bot: PTB's time periods as timedeltas, no warnings.
os.environ.setdefault("PTB_TIMEDELTA", "1")


def _share_the_default_tls_context() -> None:
    """Every bot the suite starts builds two httpx clients (PTB's requests), and each loads
    certifi's CA bundle into a new TLS context: ~40 ms of CPU, twice per bot, and a pass starts
    hundreds of bots. The suite speaks plain HTTP to the local sandbox only, so one default
    context per process serves every client (an SSLContext is made to be shared). Any other
    verify/cert setting still gets a context of its own."""
    import httpx._transports.default as transports

    original, shared = transports.create_ssl_context, {}

    def create_ssl_context(verify=True, cert=None, trust_env=True):
        if verify is not True or cert is not None:
            return original(verify=verify, cert=cert, trust_env=trust_env)
        if trust_env not in shared:
            shared[trust_env] = original(verify=True, cert=None, trust_env=trust_env)
        return shared[trust_env]

    transports.create_ssl_context = create_ssl_context


_share_the_default_tls_context()

# Hypothesis aborts a property test whose input generation is slow (too_slow): on two cores shared
# by both passes and other suites, that measures the machine's load, not the code. Every example
# is still generated and checked; deadlines are untouched.
hypothesis.settings.register_profile("shared-machine", suppress_health_check=[hypothesis.HealthCheck.too_slow])
hypothesis.settings.load_profile("shared-machine")

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
ON_POSTGRES = bool(TEST_DATABASE_URL) and not is_sqlite(normalize_url(TEST_DATABASE_URL))


def pytest_report_header(config):
    if ON_POSTGRES:
        return f"database: PostgreSQL, a new database per run on the server of {TEST_DATABASE_URL}"
    return "database: SQLite (embedded)"


@dataclass(frozen=True)
class PostgresRun:
    """This run's own database on TEST_DATABASE_URL's server, and its two roles: the owner that
    created and migrated it (TEST_DATABASE_URL's user) and a runtime role with the production
    grants, which the bot under test connects as. The database named in TEST_DATABASE_URL is only
    the door to the server: nothing is ever created, changed or dropped in it."""

    name: str
    owner_url: str
    runtime_url: str
    runtime_role: str

    def url_of(self, database: str, *, owner: bool = True) -> str:
        url = make_url(self.owner_url if owner else self.runtime_url)
        return url.set(database=database).render_as_string(hide_password=False)


def _unique_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"


async def _admin(url: str, *statements: str) -> None:
    """Statements that cannot run in a transaction (CREATE/DROP DATABASE), on the door database."""
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=10)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def _create_postgres_run() -> PostgresRun:
    door = normalize_url(TEST_DATABASE_URL)
    name, role = _unique_name("adherence_test"), _unique_name("adherence_rt")
    # CREATE DATABASE fails if the name exists, so the suite can only ever use a database it made.
    await _admin(door, f'CREATE DATABASE "{name}"', f'CREATE ROLE "{role}" LOGIN')
    owner_url = make_url(door).set(database=name).render_as_string(hide_password=False)
    runtime_url = make_url(door).set(database=name, username=role, password=None).render_as_string(
        hide_password=False)
    run = PostgresRun(name, owner_url, runtime_url, role)
    engine = make_engine(owner_url)
    try:
        await upgrade(engine)
        await apply_runtime_grants(engine, role)
    except BaseException:
        await engine.dispose()
        await _drop_postgres_run(run)  # a failed migration leaves nothing behind either
        raise
    await engine.dispose()
    return run


async def _drop_postgres_run(run: PostgresRun) -> None:
    door = normalize_url(TEST_DATABASE_URL)
    await _admin(door, f'DROP DATABASE IF EXISTS "{run.name}" WITH (FORCE)', f'DROP ROLE IF EXISTS "{run.runtime_role}"')


@pytest.fixture(scope="session")
def postgres_run() -> PostgresRun:
    if not ON_POSTGRES:
        pytest.fail("postgres_run is for the PostgreSQL pass only (mark the test postgres_only)")
    try:
        run = asyncio.run(_create_postgres_run())
    except OSError as error:
        pytest.exit(f"PostgreSQL at {TEST_DATABASE_URL} is unreachable: {error}", returncode=3)
    try:
        yield run
    finally:
        asyncio.run(_drop_postgres_run(run))


@pytest.fixture(scope="session")
def migrated_template(request, tmp_path_factory) -> str:
    """A migrated database: a SQLite file to copy per test, or this run's PostgreSQL database."""
    if ON_POSTGRES:
        return request.getfixturevalue("postgres_run").runtime_url
    path = tmp_path_factory.mktemp("template") / "template.db"
    url = f"sqlite+aiosqlite:///{path}"

    async def _migrate():
        engine = make_engine(url)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(_migrate())
    return str(path)


@pytest.fixture(scope="session")
def _sqlite_test_file(tmp_path_factory) -> Path:
    """Where each test's SQLite copy lives: one path per worker, so that the database URL, and with
    it the engine (see `_engines`), stays the same from test to test."""
    return tmp_path_factory.mktemp("database") / "test.db"


@pytest.fixture
def database_url(request, migrated_template) -> str:
    """A fresh, migrated, empty database for one test (on PostgreSQL, as the runtime role)."""
    if ON_POSTGRES:
        return migrated_template
    target: Path = request.getfixturevalue("_sqlite_test_file")
    # The last test's file is unlinked, not overwritten: a connection a failed test left open keeps
    # the old file and can never write into this test's copy.
    for leftover in (target, target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
        leftover.unlink(missing_ok=True)
    shutil.copy(migrated_template, target)
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture
def owner_database_url(request, database_url) -> str:
    """The same database as database_url, as the role that owns the schema (the SQLite file)."""
    if ON_POSTGRES:
        return request.getfixturevalue("postgres_run").owner_url
    return database_url


async def _empty_postgres(owner_url: str) -> None:
    """Empty every table as the owner, and restart their id sequences, as a fresh database has them.

    Only the tables that hold rows are emptied, with DELETE children first: a TRUNCATE swaps each
    table's files and waits for their flush (0.3-1 s per test for the two dozen tables), while most
    tests leave most tables empty. The audit trail refuses DELETE, so its guard is lifted inside the
    same transaction (only the owner can) and is back before anyone else sees it."""
    order = {table.name: index for index, table in enumerate(SQLModel.metadata.sorted_tables)}
    engine = _engine_for(owner_url)
    try:
        async with engine.begin() as connection:
            # Nobody needs this cleanup to survive a crash of the test server: do not wait for the disk.
            await connection.execute(text("SET LOCAL synchronous_commit = off"))
            tables = (await connection.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname='public' "
                "AND tablename NOT IN ('alembic_version', 'audit_head')"
            ))).scalars().all()
            filled = (await connection.execute(text(" UNION ALL ".join(
                f"SELECT '{table}' WHERE EXISTS (SELECT 1 FROM \"{table}\")" for table in tables)))).scalars().all()
            # Children before parents; a table the models do not know goes first.
            filled = sorted(filled, key=lambda table: -order.get(table, len(order)))
            if "audit_log" in filled:
                await connection.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
            for table in filled:
                await connection.execute(text(f'DELETE FROM "{table}"'))
            if "audit_log" in filled:
                await connection.execute(text("ALTER TABLE audit_log ENABLE TRIGGER USER"))
            # As TRUNCATE ... RESTART IDENTITY did: also a sequence a rolled-back insert advanced.
            await connection.execute(text(
                "SELECT setval(s.seqrelid, s.seqstart, false) FROM pg_sequence s "
                "JOIN pg_depend d ON d.objid = s.seqrelid AND d.deptype IN ('a', 'i') "
                "JOIN pg_class t ON t.oid = d.refobjid WHERE t.relname = ANY(:tables)"), {"tables": list(tables)})
    finally:
        await engine.dispose()


_engines: dict[str, AsyncEngine] = {}


def _engine_for(url: str) -> AsyncEngine:
    """One engine per database URL and worker, its connections closed after every test (they belong
    to that test's event loop). SQLAlchemy caches each statement's compiled SQL in its engine, so a
    new engine per test compiled every query again: about a tenth of an e2e test's CPU time."""
    if url not in _engines:
        _engines[url] = make_engine(url)
    return _engines[url]


@pytest.fixture
async def engine(request, database_url):
    if ON_POSTGRES:
        await _empty_postgres(request.getfixturevalue("owner_database_url"))
    engine = _engine_for(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def example_config_path() -> Path:
    return Path(__file__).resolve().parent.parent / "config.example.toml"


def pytest_configure(config):
    config.addinivalue_line("markers", "postgres_only: runs in the PostgreSQL pass of `make test` only")
    config.addinivalue_line("markers", "sqlite_only: runs in the SQLite pass of `make test` only")
    config.addinivalue_line("markers", "requires_root: creates a system user (deselected when not root)")
    config.addinivalue_line("markers", "requires_systemd_analyze: deselected where systemd-analyze is absent")


def _environment_deselections() -> dict[str, str]:
    """Markers this machine cannot run, with the reason printed at the end of the run."""
    unwanted = {}
    if os.geteuid() != 0:
        unwanted["requires_root"] = "requires_root tests deselected: not running as root (they create a system user)"
    if shutil.which("systemd-analyze") is None:
        unwanted["requires_systemd_analyze"] = ("requires_systemd_analyze tests deselected: "
                                                "systemd-analyze is not installed")
    return unwanted


# The tests that take longest in wall time (simulations, waits on real timers, subprocesses), longest
# first, measured with --durations. They run first, one to a worker (SlowestFirstScheduling), so that
# they overlap the hundreds of short tests instead of finishing the run alone. A renamed test only
# loses its place in this list; it still runs.
SLOWEST_FIRST = (
    "tests/simulation/test_simulation.py::test_a_broken_build",
    "tests/simulation/test_simulation.py::test_short_seed_fixed_trial",
    "tests/scheduler/test_sched_delivery.py::test_flood_2000_reminders",
    "tests/security/test_sec_polling_outage.py::test_a_polling_outage_in_the_running_bot",
    "tests/test_conversations_doc.py::test_the_committed_conversations_document_is_current",
    "tests/dialogs/test_dialog_restart.py::",
    "tests/dialogs/test_two_processes.py::",
    "tests/scheduler/test_alert_fairness.py::test_recovery_never_hands_back",
    "tests/scheduler/test_sched_processes.py::",
    "tests/deploy/test_install.py::test_unit_command_lines",
    "tests/db/test_audit_trail.py::test_verify_audit_reports_an_edited_row",
    "tests/domain/test_domain_ack_codes.py::test_guessed_codes",
    "tests/scheduler/test_sched_lifecycle.py::test_a_whole_course_runs_in_seconds",
    "tests/test_health.py::test_health_cli_exits_nonzero_without_a_sweep",
)


def _slowness_rank(item) -> int:
    return next((rank for rank, prefix in enumerate(SLOWEST_FIRST) if item.nodeid.startswith(prefix)),
                len(SLOWEST_FIRST))


def pytest_collection_modifyitems(config, items):
    """Database-specific tests are deselected (not skipped) in the other pass: `make test` runs
    both passes, so every test runs exactly where it means something. The slowest tests are
    moved to the front (a stable sort: every worker collects the same order)."""
    unwanted = {"sqlite_only" if ON_POSTGRES else "postgres_only", *_environment_deselections()}
    deselected = [item for item in items if any(item.get_closest_marker(m) for m in unwanted)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]
    items.sort(key=_slowness_rank)


def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") == "load":
        return _slowest_first_scheduling(config, log)
    return None


def _slowest_first_scheduling(config, log):
    """pytest-xdist's load scheduling, but the first tests of the collection (the slowest) are dealt
    one to each worker, each with one quick test from the end of the collection (a worker only
    starts a test once it holds the next), and then every worker is sent one test at a time. The
    default sends each worker a run of consecutive tests, so one worker got all the slow ones."""
    from xdist.scheduler import LoadScheduling

    class SlowestFirstScheduling(LoadScheduling):
        def schedule(self) -> None:
            assert self.collection_is_completed
            if self.collection is not None or not self._check_nodes_have_same_collection():
                return super().schedule()
            collection = next(iter(self.node2collection.values()))
            if len(collection) < 2 * len(self.nodes):
                return super().schedule()
            self.collection = collection
            self.pending[:] = range(len(collection))
            self.maxschedchunk = 1
            for node in self.nodes:
                self._send_tests(node, 1)
            for node in self.nodes:
                quick = self.pending.pop()
                self.node2pending[node].append(quick)
                node.send_runtest_some([quick])
            if not self.pending:
                for node in self.nodes:
                    node.shutdown()

    return SlowestFirstScheduling(config, log)


def pytest_terminal_summary(terminalreporter):
    # Computed here, not during collection: with pytest-xdist only the workers collect.
    for reason in _environment_deselections().values():
        terminalreporter.write_line(reason)


SANDBOX_TOKEN = "123456:SANDBOX-TOKEN"  # bot.sandbox's default: recognizable in any text


@pytest.fixture(autouse=True)
def token_never_logged(caplog):
    """The whole suite doubles as a leak check: the bot token must not appear in any log record
    (message or traceback) produced while a test ran."""
    import logging

    caplog.set_level(logging.INFO)  # httpx logs each request URL (which holds the token) at INFO
    yield
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        assert SANDBOX_TOKEN not in text, f"bot token leaked in a log record from {record.name}"
