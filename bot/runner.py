"""`adherence-bot run`: one process, polling or webhook, stopped cleanly by SIGTERM."""

from __future__ import annotations

import logging

from telegram import Update

from bot.config import Settings
from bot.db.engine import make_engine
from bot.logs import configure_logging

log = logging.getLogger("adherence.run")


def run_forever(settings: Settings) -> int:
    from bot.app import build_application

    configure_logging(settings)
    engine = make_engine(settings.database.url)
    application = build_application(settings, engine=engine)
    log.info("event=starting mode=%s database=%s", settings.telegram.mode, engine.dialect.name)
    if settings.telegram.mode == "webhook":
        webhook = settings.telegram.webhook
        application.run_webhook(
            listen=webhook.listen, port=webhook.port, url_path=webhook.url_path,
            webhook_url=f"{webhook.public_url.rstrip('/')}/{webhook.url_path}" if webhook.public_url else None,
            secret_token=webhook.secret_token.get_secret_value() or None, allowed_updates=Update.ALL_TYPES,
        )
    else:
        application.run_polling(allowed_updates=Update.ALL_TYPES)
    return 0
