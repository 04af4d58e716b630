"""A Telegram outage while polling is one warning (and one line with its duration when it ends),
not an ERROR with a traceback per failed attempt: a network blip must not page anyone."""

import logging

from bot.polling import PollingOutage, is_polling_network_error
from bot.sandbox import BotApiSandbox
from telegram.error import NetworkError, RetryAfter, TimedOut
from tests.scheduler.sched_support import BotProcess, wait_until, write_config


def test_outage_is_logged_once_and_its_end_with_the_duration(caplog):
    now = [100.0]
    outage = PollingOutage(monotonic=lambda: now[0])
    caplog.set_level(logging.DEBUG, logger="adherence.polling")
    outage.succeeded()  # nothing to report while all is well
    for _ in range(6):
        outage.failed("TimedOut")
        now[0] += 1.5
    outage.succeeded()
    outage.succeeded()
    lines = [r.getMessage() for r in caplog.records if r.name == "adherence.polling"]
    assert len(lines) == 2 and all(r.levelno == logging.WARNING for r in caplog.records if r.name == "adherence.polling")
    assert lines[0].startswith("event=telegram_unreachable reason=TimedOut")
    assert lines[1] == "event=telegram_reachable_again outage_seconds=9.0 failed_polls=6"


def test_only_polling_network_errors_are_quieted():
    assert is_polling_network_error(None, NetworkError("boom")) and is_polling_network_error(None, TimedOut())
    assert not is_polling_network_error(None, RetryAfter(3))
    assert not is_polling_network_error(object(), NetworkError("boom"))  # an update's own failure is an ERROR
    assert not is_polling_network_error(None, ValueError("bug"))


async def test_a_polling_outage_in_the_running_bot_is_one_warning(database_url, engine, tmp_path):
    async with BotApiSandbox() as sandbox:
        config = write_config(tmp_path / "bot.toml", sandbox, database_url)
        bot = await BotProcess(config, sandbox).start()
        try:
            await bot.wait_ready(timeout=60)
            sandbox.inject_fault(kind="refuse", method="getUpdates", times=4)
            # An update ends the long poll in progress at once (an idle one lasts 10 s), so the next
            # four polls are the outage; the update sent during it is what the first good poll returns,
            # so the end of the outage is seen at once too, and that update is answered after it.
            user = sandbox.user(9201, language_code="en")
            user.send_command("/help")
            await sandbox.wait_for(lambda: user.messages, timeout=30)
            user.send_command("/help")
            await wait_until(lambda: "event=telegram_reachable_again" in bot.output, timeout=60,
                             what="the end of the outage")
            await sandbox.wait_for(lambda: len(user.messages) == 2, timeout=30)
        finally:
            code = await bot.terminate()
        output = bot.output
        assert code == 0, output[-3000:]
        assert output.count("event=telegram_unreachable") == 1, output[-3000:]
        assert output.count("event=telegram_reachable_again") == 1
        assert "failed_polls=4" in output
        assert "level=ERROR" not in output and "handler_error" not in output and "Traceback" not in output, \
            output[-3000:]
