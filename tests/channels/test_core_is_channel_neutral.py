"""The core (domain, services, scheduler) and the screens it renders (bot/render: text plus neutral
buttons and menus) speak the channel port only: no module there imports Telegram's library or the
Telegram adapter (issue 13's "done when")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = [ROOT / "bot" / "domain", ROOT / "bot" / "services", ROOT / "scheduler", ROOT / "bot" / "render"]
ADAPTER_MODULES = ("telegram", "bot.channels.telegram", "bot.channels.email", "aiosmtplib")


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", sorted(p for folder in CORE for p in folder.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_imports_no_channel_adapter(path):
    leaks = [name for name in _imports(path)
             if any(name == module or name.startswith(module + ".") for module in ADAPTER_MODULES)]
    assert leaks == [], f"{path.relative_to(ROOT)} imports {leaks}"
