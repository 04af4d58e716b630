"""`adherence-bot simulate` / `python -m sim`: run the whole-trial simulation and print the summary."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from sim.scenario import DEFAULT_SEED, SimConfig

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"default {DEFAULT_SEED}")
    parser.add_argument("--patients", type=int, default=149)
    parser.add_argument("--cycles", type=int, default=4)
    parser.add_argument("--database", default="sqlite",
                        help="sqlite (a temporary file), postgresql (a new database on $SIM_POSTGRES_URL, default "
                             f"{DEFAULT_POSTGRES}, dropped afterwards), or a PostgreSQL server URL")
    parser.add_argument("--only", default=None, help="comma-separated patient indices (reproducing a shrunk failure)")
    parser.add_argument("--days", type=int, default=None, help="nobody acts after this many simulated days")
    parser.add_argument("--break", dest="breaks", default="",
                        help="a deliberately broken build: no_resend_marker, duplicate_dose_day")
    parser.add_argument("--no-faults", action="store_true", help="no injected faults or crashes")
    parser.add_argument("--shrink-runs", type=int, default=8, help="re-runs allowed to shrink a failure (0: none)")
    parser.add_argument("--keep-database", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="print where the real time went")


def config_from(args: argparse.Namespace) -> SimConfig:
    from sim.scenario import FaultRates

    database = args.database
    if database == "postgresql":
        database = os.environ.get("SIM_POSTGRES_URL", DEFAULT_POSTGRES)
    config = SimConfig(seed=args.seed, patients=args.patients, cycles=args.cycles, database=database,
                       subset=frozenset(int(i) for i in args.only.split(",")) if args.only else None,
                       max_days=args.days, breaks=frozenset(b for b in args.breaks.split(",") if b),
                       keep_database=args.keep_database, verbose=args.verbose)
    if args.no_faults:
        config = config.with_(faults=FaultRates(telegram_per_step=0, db_drops_per_day=0, crashes=0))
    return config


async def run(config: SimConfig, *, shrink_runs: int = 8):
    from sim.engine import simulate
    from sim.shrink import shrink

    result = await simulate(config)
    if not result.ok and shrink_runs > 0:
        result.shrunk = await shrink(result, max_runs=shrink_runs)
    return result


def run_from_args(args: argparse.Namespace) -> int:
    from sim.report import summary

    if args.verbose:  # `kill -USR1 <pid>` prints every thread's stack (a run that seems stuck)
        import faulthandler
        import signal

        faulthandler.register(signal.SIGUSR1)

        def dump_tasks(*_):  # `kill -USR2 <pid>`: every asyncio task's stack
            import asyncio as _asyncio

            for task in _asyncio.all_tasks(_asyncio.get_event_loop()):
                task.print_stack()

        signal.signal(signal.SIGUSR2, dump_tasks)
    result = asyncio.run(run(config_from(args), shrink_runs=args.shrink_runs))
    print(summary(result))
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim", description="Whole-trial simulation under faults.")
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
