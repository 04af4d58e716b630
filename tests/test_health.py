from datetime import datetime, timedelta, timezone

from bot.db.models import RuntimeState, UnreachableRecipient
from bot.health import check
from bot.services.runtime import Runtime
from tests.e2e.harness import EXAMPLE

import tomllib

from bot.config import settings_from_mapping

UTC = timezone.utc


def _settings(url: str):
    data = tomllib.loads(EXAMPLE.read_text("utf-8"))
    data["database"]["url"] = url
    return settings_from_mapping(data, env={})


async def test_health_needs_database_and_a_recent_sweep(engine, database_url):
    settings = _settings(database_url)
    now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    ok, message = await check(settings, now=now)
    assert not ok and "never swept" in message
    async with Runtime(settings=settings, engine=engine).session() as session:
        session.add(RuntimeState(key="scheduler.last_sweep", value="host:1", updated_at=now - timedelta(seconds=30)))
        await session.commit()
    ok, message = await check(settings, now=now)
    assert ok, message
    ok, message = await check(settings, now=now + timedelta(hours=1))
    assert not ok and "last swept" in message


async def test_health_fails_when_database_is_unreachable(tmp_path):
    settings = _settings("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    ok, message = await check(settings)
    assert not ok and "database unreachable" in message and "nobody" not in message


def test_health_cli_exits_nonzero_without_a_sweep(tmp_path, example_config_path):
    import subprocess
    import sys

    config = tmp_path / "config.toml"
    config.write_text(example_config_path.read_text("utf-8").replace(
        "sqlite+aiosqlite:///adherence.db", f"sqlite+aiosqlite:///{tmp_path / 'h.db'}"), "utf-8")
    migrate = subprocess.run([sys.executable, "-m", "bot", "migrate", "--config", str(config)], capture_output=True,
                             text=True, timeout=60)
    assert migrate.returncode == 0, migrate.stderr
    result = subprocess.run([sys.executable, "-m", "bot", "health", "--config", str(config)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1 and "never swept" in result.stderr


async def test_health_counts_mail_recipients_as_a_way_to_reach_the_team(engine, database_url):
    """A site whose alerts go by mail only is stranded when its mailboxes are refused, whatever
    Telegram says about the same people."""
    data = tomllib.loads(EXAMPLE.read_text("utf-8"))
    data["database"]["url"] = database_url
    data["email"] = {"enabled": True, "host": "127.0.0.1", "tls": "none", "from_address": "bot@example.org"}
    data["sites"][1]["coordinators"][0]["email"] = "sh-nurse@example.org"
    data["sites"][1]["alert_channels"] = ["email"]
    settings = settings_from_mapping(data, env={})
    now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    async with Runtime(settings=settings, engine=engine).session() as session:
        session.add(RuntimeState(key="scheduler.last_sweep", value="host:1", updated_at=now))
        sh_nurse = data["sites"][1]["coordinators"][0]["telegram_id"]
        session.add(UnreachableRecipient(channel="telegram", address=str(sh_nurse), site_id="SH", since=now,
                                         error="Forbidden: bot was blocked by the user"))
        await session.commit()
    ok, message = await check(settings, now=now)
    assert ok, message  # the SH nurse blocked the bot, but SH's alerts go by mail
    async with Runtime(settings=settings, engine=engine).session() as session:
        session.add(UnreachableRecipient(channel="email", address="sh-nurse@example.org", site_id="SH", since=now,
                                         error="recipient: 550 no such mailbox"))
        await session.commit()
    ok, message = await check(settings, now=now)
    assert not ok and "site(s) SH" in message
