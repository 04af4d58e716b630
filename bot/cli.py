"""`adherence-bot` command line. Plain-text output, non-zero exit on failure, no prompts.

Configuration is validated before anything touches the database or Telegram.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date
from pathlib import Path

from bot import cli_team
from bot.config import ConfigError, Settings, default_config_path, load_settings, require_deployable


class CommandError(Exception):
    """A failure to report to the operator in one line (exit status 1)."""


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="configuration file (default: $ADHERENCE_BOT_CONFIG, else ./config.toml)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adherence-bot", description="Dosing-adherence Telegram bot for NCT07101627.")
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("path", nargs="?", type=Path, default=None)
    _config_arg(check)
    check.add_argument("--sandbox", action="store_true",
                       help="allow the example's placeholder ids and phones (local Bot API sandbox only)")

    migrate = sub.add_parser("migrate", help="create or upgrade the database schema")
    _config_arg(migrate)
    migrate.add_argument("--print-grants", metavar="ROLE", default=None,
                         help="print the PostgreSQL GRANTs that make ROLE a runtime role, and exit")
    _config_arg(sub.add_parser("verify-audit", help="check the audit trail's hash chain; report the first broken link"))
    run = sub.add_parser("run", help="run the bot (polling or webhook, as configured)")
    _config_arg(run)
    run.add_argument("--sandbox", action="store_true",
                     help="allow the example's placeholder ids and phones (local Bot API sandbox only)")
    _config_arg(sub.add_parser("health", help="exit 0 only if the database answers and the scheduler swept recently"))

    demo = sub.add_parser("demo", help="run a scripted trial against the local Bot API sandbox")
    _config_arg(demo)
    demo.add_argument("--out", type=Path, default=Path("demo-output"))

    invite = sub.add_parser("invite", help="issue a single-use enrolment invitation")
    _config_arg(invite)
    invite.add_argument("--site", required=True)
    invite.add_argument("--subject", default=None, help="pseudonymous subject id, e.g. SH-017")
    invite.add_argument("--expires-days", type=int, default=None, help="default: the configured expiry (7 days)")

    cycle = sub.add_parser("cycle", help="register a patient's next course")
    _config_arg(cycle)
    cycle.add_argument("subject")
    cycle.add_argument("--chemo-end", required=True, type=date.fromisoformat, help="YYYY-MM-DD")

    simulate = sub.add_parser("simulate", help="simulate a whole trial under faults against the local sandbox "
                                                "and check the invariants (no configuration needed)")
    from sim.cli import add_arguments

    add_arguments(simulate)

    cli_team.add_parsers(sub, _config_arg)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    path = getattr(args, "path", None) or args.config or default_config_path()
    return load_settings(path)


async def _with_engine(settings: Settings, work):
    from bot.db.engine import make_engine

    engine = make_engine(settings.database.url)
    try:
        return await work(engine)
    finally:
        await engine.dispose()


def _cmd_check_config(args, settings: Settings) -> int:
    require_deployable(settings, sandbox=args.sandbox)
    coordinators = sum(len(s.coordinators) for s in settings.sites)
    print(f"OK: {len(settings.sites)} sites, {coordinators} coordinators, "
          f"{len(settings.triage.symptoms)} symptoms, database {settings.database.url.split(':', 1)[0]}")
    return 0


def _cmd_migrate(args, settings: Settings) -> int:
    from bot.db.engine import is_sqlite, make_engine, normalize_url
    from bot.db.migrate import current_revision, upgrade
    from bot.db.roles import apply_runtime_grants, role_of, runtime_grants

    if args.print_grants:
        try:
            print(";\n".join(runtime_grants(args.print_grants)) + ";")
        except ValueError as error:
            raise CommandError(str(error)) from None
        return 0
    runtime_url = normalize_url(settings.database.url)
    owner_url = normalize_url(settings.database.migrate_url or settings.database.url)
    runtime_role = None if is_sqlite(runtime_url) else role_of(runtime_url)
    grant = runtime_role is not None and runtime_role != role_of(owner_url)

    async def work():
        engine = make_engine(owner_url)
        try:
            await upgrade(engine)
            if grant:
                await apply_runtime_grants(engine, runtime_role)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    revision = asyncio.run(work())
    print(f"database at revision {revision}" + (f"; runtime role {runtime_role} granted" if grant else ""))
    return 0


def _cmd_verify_audit(args, settings: Settings) -> int:
    from bot.db.audit_chain import verify

    result = asyncio.run(_with_engine(settings, verify))
    if not result.ok:
        print(f"audit trail BROKEN at row {result.broken_at}: {result.problem}", file=sys.stderr)
        print(f"rows checked: {result.rows}; the rows before it chain correctly", file=sys.stderr)
        return 1
    print(f"audit trail OK: {result.rows} rows, head {result.head or '(empty)'}")
    return 0


def _cmd_run(args, settings: Settings) -> int:
    from bot.runner import run_forever

    require_deployable(settings, sandbox=args.sandbox)
    if not settings.token:
        raise CommandError("no bot token: set TELEGRAM_BOT_TOKEN (or telegram.token)")
    return run_forever(settings)


def _cmd_health(args, settings: Settings) -> int:
    from bot.health import check

    healthy, message = asyncio.run(check(settings))
    print(message, file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


def _cmd_demo(args, settings: Settings | None) -> int:
    from bot.demo import DemoOutputRefused, run_demo

    try:
        return asyncio.run(run_demo(out_dir=args.out, settings=settings))
    except DemoOutputRefused as error:
        raise CommandError(str(error)) from None


def _cmd_simulate(args, settings: Settings | None) -> int:
    from sim.cli import run_from_args

    return run_from_args(args)


def _runtime(settings: Settings, engine):
    from bot.services.runtime import Runtime

    return Runtime(settings=settings, engine=engine)


def _cmd_invite(args, settings: Settings) -> int:
    from bot.services import invitations

    async def work(engine):
        try:
            return await invitations.issue(_runtime(settings, engine), site_id=args.site, subject_id=args.subject,
                                           expires_days=args.expires_days or invitations.expiry_days(settings),
                                           actor_kind="operator", actor_id="cli")
        except invitations.InviteRefused as error:
            raise CommandError(str(error)) from None

    issued = asyncio.run(_with_engine(settings, work))
    print(f"token: {issued.token}")
    print(f"link: {issued.link}")
    print(f"expires: {issued.expires_at.isoformat()}")
    return 0


def _cmd_cycle(args, settings: Settings) -> int:
    from bot.services import courses

    async def work(engine):
        try:
            return await courses.add_course(_runtime(settings, engine), subject_id=args.subject,
                                          chemo_end=args.chemo_end, actor_kind="operator", actor_id="cli")
        except courses.CourseRefused as error:
            raise CommandError(f"course not registered: {error.code} {error}") from None

    course = asyncio.run(_with_engine(settings, work))
    print(f"{args.subject}: cycle {course.cycle}, doses {course.first_day} .. {course.last_day}")
    return 0


COMMANDS = {
    "check-config": _cmd_check_config,
    "migrate": _cmd_migrate,
    "verify-audit": _cmd_verify_audit,
    "run": _cmd_run,
    "health": _cmd_health,
    "demo": _cmd_demo,
    "simulate": _cmd_simulate,
    "invite": _cmd_invite,
    "cycle": _cmd_cycle,
    **cli_team.COMMANDS,
}


def _another_scheduler_running(error: Exception) -> bool:
    # scheduler.ownership (and the database layer under it) is imported only by the commands that
    # start a scheduler, so that the others (check-config, health, ...) start in a fraction of the time.
    ownership = sys.modules.get("scheduler.ownership")
    return ownership is not None and isinstance(error, ownership.AnotherSchedulerRunning)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        # The demo brings its own configuration unless one is given; the simulation always does.
        needs_no_config = args.command == "simulate" or (args.command == "demo" and args.config is None) \
            or getattr(args, "print_grants", None)
        settings = None if needs_no_config else _settings(args)
        return COMMANDS[args.command](args, settings)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    except (CommandError, cli_team.TeamCommandError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        if not _another_scheduler_running(error):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
