"""Run the sandbox standalone: ``python -m bot.sandbox --port 8081 [--enforce-limits]``.

Prints ``BASE_URL=...``, ``BASE_FILE_URL=...`` and ``TOKEN=...`` lines (flushed, so a parent
process can read them) and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from bot.sandbox.server import BotApiSandbox


async def _serve(args: argparse.Namespace) -> None:
    sandbox = BotApiSandbox(token=args.token, host=args.host, port=args.port,
                            bot_username=args.bot_username, enforce_limits=args.enforce_limits)
    await sandbox.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"BASE_URL={sandbox.base_url}", flush=True)
    print(f"BASE_FILE_URL={sandbox.base_file_url}", flush=True)
    print(f"TOKEN={sandbox.token}", flush=True)
    try:
        await stop.wait()
    finally:
        await sandbox.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bot.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", default="123456:SANDBOX-TOKEN")
    parser.add_argument("--bot-username", default="adherence_test_bot")
    parser.add_argument("--enforce-limits", action="store_true", help="answer 429 on floods")
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
