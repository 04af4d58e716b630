"""What the dialog proofs share: reading rows from the test's side, waiting for the time question."""

from __future__ import annotations

from sqlmodel import select

from bot.db.models import DialogState
from bot.services import dialogs
from bot.services.runtime import Runtime
from tests.scheduler.sched_support import wait_until


async def rows(rt: Runtime, model, *where) -> list:
    async with rt.session() as session:
        return list(await session.exec(select(model).where(*where)))


async def time_question_kept(rt: Runtime) -> None:
    """The time question's message id is stored just after it is sent: wait for it."""
    await wait_until(lambda: rows(rt, DialogState, DialogState.kind == dialogs.TIME_QUESTION), timeout=10,
                     what="the time question remembered")
