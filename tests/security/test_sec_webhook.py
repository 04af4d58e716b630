"""Webhook mode: the secret token is enforced and a redelivered update is handled once."""

from __future__ import annotations

import socket

import aiohttp

from bot.app import build_application, on_startup
from bot.sandbox import BotApiSandbox
from bot.services.clock import FakeClock
from tests.e2e.harness import make_settings

SECRET = "webhook-secret-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_webhook_secret_and_duplicate_updates(engine, database_url):
    from datetime import datetime, timezone

    port = _free_port()
    async with BotApiSandbox() as sandbox:
        settings = make_settings(sandbox, database_url)
        app = build_application(settings, engine=engine, clock=FakeClock(datetime(2026, 12, 1, tzinfo=timezone.utc)))
        await app.initialize()
        await on_startup(app)
        await app.start()
        url = f"http://127.0.0.1:{port}/telegram"
        await app.updater.start_webhook(listen="127.0.0.1", port=port, url_path="telegram", webhook_url=url,
                                        secret_token=SECRET)
        try:
            assert sandbox.webhook["url"] == url
            user = sandbox.user(7701, language_code="en")
            update = user.send_text("hello")  # delivered by the sandbox with the right secret
            await sandbox.wait_for(lambda: len(user.messages) == 1)
            async with aiohttp.ClientSession() as http:
                for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
                    async with http.post(url, json=update, headers=headers) as response:
                        assert response.status == 403
                # Telegram redelivers the same update: handled once
                async with http.post(url, json=update,
                                     headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as response:
                    assert response.status == 200
            other = user.send_text("second")
            await sandbox.wait_for(lambda: len(user.messages) == 2)
            assert other["update_id"] > update["update_id"]
            assert len(user.messages) == 2  # the duplicate produced no reply
        finally:
            await app.updater.stop()
            await app.stop()
            await app.shutdown()
