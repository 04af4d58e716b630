"""What the dialog proofs share: reading rows from the test's side, waiting for the time question,
the configuration of a real `adherence-bot run` process."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlmodel import select

from bot.db.models import DialogState
from bot.services import dialogs
from bot.services.runtime import Runtime
from tests.scheduler.sched_support import wait_until, write_config

WEBHOOK_SECRET = "two-processes-secret-0123456789abcdef"


async def rows(rt: Runtime, model, *where) -> list:
    async with rt.session() as session:
        return list(await session.exec(select(model).where(*where)))


async def time_question_kept(rt: Runtime) -> None:
    """The time question's message id is stored just after it is sent: wait for it."""
    await wait_until(lambda: rows(rt, DialogState, DialogState.kind == dialogs.TIME_QUESTION), timeout=10,
                     what="the time question remembered")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_config(path: Path, sandbox, database_url: str, *, webhook_port: int | None = None) -> Path:
    """The config of a real bot process against the sandbox. Its morning digest is set half a day
    away from now (the processes run on the wall clock), so no digest lands in a chat under test.
    `webhook_port`: webhook mode on 127.0.0.1 at that port (the public URL is a placeholder the
    sandbox never calls: the test points the sandbox at the process it wants)."""
    write_config(path, sandbox, database_url)
    text = path.read_text("utf-8")
    away = (datetime.now(ZoneInfo("Asia/Shanghai")) + timedelta(hours=12)).strftime("%H:%M")
    text = text.replace("[database]\n", f'[alerts]\ndigest_time = "{away}"\n\n[database]\n', 1)
    if webhook_port is not None:
        text = text.replace("[telegram]\n", '[telegram]\nmode = "webhook"\n', 1)
        text = text.replace("[database]\n", f'[telegram.webhook]\nlisten = "127.0.0.1"\nport = {webhook_port}\n'
                            f'url_path = "telegram"\npublic_url = "https://bot.example-hospital.cn"\n'
                            f'secret_token = "{WEBHOOK_SECRET}"\n\n[database]\n', 1)
    path.write_text(text, "utf-8")
    return path
