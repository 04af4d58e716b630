"""bot/domain stays pure: no framework, I/O or clock imports, and the clock is never read."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bot.domain

DOMAIN_DIR = Path(bot.domain.__file__).resolve().parent
DOMAIN_FILES = sorted(DOMAIN_DIR.rglob("*.py"))

FORBIDDEN_MODULES = {
    "telegram",
    "sqlmodel",
    "sqlalchemy",
    "apscheduler",
    "aiohttp",
    "asyncio",
    "httpx",
    "babel",
    "os",
    "pathlib",
    "socket",
    "subprocess",
    "time",
    "importlib",
    "io",
    "shutil",
    "requests",
    "urllib",
    "logging",
}
# Everything else must be on this list (the brief's stdlib set plus typing helpers).
ALLOWED_MODULES = {
    "__future__",
    "base64",
    "collections",
    "dataclasses",
    "datetime",
    "enum",
    "hashlib",
    "hmac",
    "re",
    "unicodedata",
    "secrets",
    "typing",
    "zoneinfo",
}
# Methods that read the clock, whatever they are called on (so `dt.now()` after
# `from datetime import datetime as dt` is caught too); the domain defines none of its own.
CLOCK_METHODS = {"now", "utcnow", "today", "monotonic", "perf_counter", "time_ns"}
# `time.time()` and friends, by receiver, since `.time()` on a datetime is harmless.
CLOCK_READS = {("time", "time"), ("time", "localtime"), ("time", "gmtime")}
FORBIDDEN_BUILTINS = {"open", "__import__", "eval", "exec", "input", "print"}


def _receiver_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):  # datetime.datetime.now → "datetime"
        return node.attr
    return None


def violations(source: str, filename: str = "<domain>") -> list[str]:
    found = []
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import inside bot.domain
                continue
            modules = [node.module or ""]
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and (
                func.attr in CLOCK_METHODS or (_receiver_name(func.value), func.attr) in CLOCK_READS
            ):
                found.append(f"{filename}:{node.lineno}: reads the clock ({ast.unparse(func)})")
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_BUILTINS:
                found.append(f"{filename}:{node.lineno}: calls {func.id}()")
            continue
        else:
            continue
        for module in modules:
            top = module.split(".")[0]
            if module == "bot.domain" or module.startswith("bot.domain."):
                continue
            if top in FORBIDDEN_MODULES:
                found.append(f"{filename}:{node.lineno}: imports forbidden module {module}")
            elif top not in ALLOWED_MODULES:
                found.append(f"{filename}:{node.lineno}: imports {module}, which is not on the domain allow-list")
    return found


def test_domain_package_is_found():
    names = {path.name for path in DOMAIN_FILES}
    assert {"__init__.py", "schedule.py", "dose.py", "adherence.py", "triage.py", "tokens.py"} <= names


@pytest.mark.parametrize("path", DOMAIN_FILES, ids=lambda path: path.name)
def test_domain_module_is_pure(path):
    assert violations(path.read_text(encoding="utf-8"), path.name) == []


@pytest.mark.parametrize(
    "source",
    [
        "import telegram",
        "from sqlmodel import Session",
        "import sqlalchemy.orm",
        "from apscheduler.triggers.date import DateTrigger",
        "import aiohttp",
        "import asyncio",
        "import httpx",
        "from babel.dates import format_date",
        "import os",
        "from pathlib import Path",
        "import socket",
        "import subprocess",
        "import time",
        "from time import time",
        "from bot.db.models import Patient",
        "import json",
        "from datetime import datetime\nx = datetime.now()",
        "from datetime import datetime, timezone\nx = datetime.now(timezone.utc)",
        "import datetime\nx = datetime.datetime.utcnow()",
        "from datetime import date\nx = date.today()",
        "from datetime import datetime\nx = datetime.today()",
        "from datetime import datetime as dt\nx = dt.now()",
        "x = time.time()",
        "x = open('f')",
        "m = __import__('os')",
    ],
)
def test_the_checker_catches(source):
    assert violations(source), f"not caught: {source!r}"


def test_the_checker_allows_ordinary_domain_code():
    source = (
        "from __future__ import annotations\n"
        "from datetime import date, datetime, time, timedelta, timezone\n"
        "from collections.abc import Sequence\n"
        "from zoneinfo import ZoneInfo\n"
        "from bot.domain.dose import DoseState\n"
        "from . import schedule\n"
        "x = datetime.combine(date(2026, 1, 1), time(8), tzinfo=timezone.utc).astimezone(ZoneInfo('UTC'))\n"
        "y = x.time()\n"
    )
    assert violations(source) == []
