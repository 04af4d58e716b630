"""The core (domain, services, scheduler) and the screens it renders (bot/render: text plus neutral
buttons and menus) speak the channel port only: no module there imports Telegram's library or the
Telegram adapter (issue 13's "done when")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = [ROOT / "bot" / "domain", ROOT / "bot" / "services", ROOT / "scheduler"]
SCREENS = ROOT / "bot" / "render"  # may name Telegram in words (a mail says "open Telegram"), never import it
ADAPTER_MODULES = ("telegram", "bot.channels.telegram", "bot.channels.email", "aiosmtplib")


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", sorted(p for folder in [*CORE, SCREENS] for p in folder.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_imports_no_channel_adapter(path):
    leaks = [name for name in _imports(path)
             if any(name == module or name.startswith(module + ".") for module in ADAPTER_MODULES)]
    assert leaks == [], f"{path.relative_to(ROOT)} imports {leaks}"



def _channel_words(path: Path) -> list[str]:
    """Lines naming Telegram that are not comment lines (what `grep -rn -i telegram` shows, minus
    the comments): docstrings, names, strings and code all count."""
    return [f"{number}: {line.strip()}"
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
            if "telegram" in line.lower() and not line.strip().startswith("#")]


def test_the_core_names_no_channel_outside_comments():
    """Issue 13's "done when": `grep -rn -i telegram bot/domain bot/services scheduler` finds
    comments only. People are accounts and recipients; which channel is the adapter's business."""
    words = [f"{path.relative_to(ROOT)}:{hit}" for folder in CORE for path in sorted(folder.rglob("*.py"))
             for hit in _channel_words(path)]
    assert words == []


def test_the_grep_sees_a_name_a_docstring_or_a_string(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""Sent to Telegram."""\n# Telegram is fine here\nx = "telegram:42"\n'
                      "def f(telegram_user_id): ...\n", encoding="utf-8")
    assert _channel_words(sample) == ['1: """Sent to Telegram."""', '3: x = "telegram:42"',
                                      "4: def f(telegram_user_id): ..."]
