"""Structured logs: one event per line, key=value or JSON, never a secret.

httpx logs every request URL, and Bot API URLs contain the token. Handler filters would only
cover our own handler, so secrets are scrubbed where every record is born (the log record
factory) and again from formatted tracebacks.
"""

from __future__ import annotations

import json
import logging

from bot.config import Settings

REDACTED = "[REDACTED]"
_secrets: set[str] = set()
_installed = False


def _scrub(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, REDACTED)
    return text


def install_secret_scrubber(*secrets: str) -> None:
    """Register secrets (idempotent); every log record created afterwards is scrubbed."""
    global _installed
    _secrets.update(s for s in secrets if s and len(s) >= 8)
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _secrets:
            message = _scrub(record.getMessage())
            record.msg, record.args = message, None
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


class ScrubbingFormatter(logging.Formatter):
    """key=value lines; tracebacks (which may quote URLs) are scrubbed too."""

    def format(self, record: logging.LogRecord) -> str:
        return _scrub(super().format(record))


class JsonFormatter(ScrubbingFormatter):
    def format(self, record: logging.LogRecord) -> str:
        event = {"at": self.formatTime(record), "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return _scrub(json.dumps(event, ensure_ascii=False))


def configure_logging(settings: Settings) -> None:
    install_secret_scrubber(settings.token, settings.telegram.webhook.secret_token.get_secret_value(),
                            settings.email.password.get_secret_value())
    handler = logging.StreamHandler()
    if settings.logging.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(ScrubbingFormatter("at=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.logging.level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # PTB and httpcore echo whole updates (a patient's typed text) at DEBUG: never below INFO.
    for name in ("telegram", "httpcore", "hpack"):
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
