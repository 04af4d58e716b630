"""The dialog store and the update ledger on the real database (no PTB, no sandbox)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlmodel import select

from bot.channels.port import Account
from bot.db.models import DialogState, ProcessedUpdate
from bot.services import dialogs, seen_updates
from bot.services.clock import FakeClock
from bot.services.runtime import Runtime

T0 = datetime(2026, 12, 1, 1, 0, tzinfo=timezone.utc)
NURSE = Account.telegram(42).key


def _rt(engine) -> Runtime:
    return Runtime(settings=None, engine=engine, clock=FakeClock(T0))


async def test_a_question_is_taken_once_and_lapses_after_its_expiry(engine):
    rt = _rt(engine)
    ask = dict(user=NURSE, kind=dialogs.COORDINATOR_QUESTION, payload={"step": "withdraw_reason", "subject": "NJ-1"},
               ttl=dialogs.COORDINATOR_QUESTION_TTL)
    await dialogs.remember(rt, **ask)
    assert await dialogs.recall(rt, user=NURSE, kind=dialogs.COORDINATOR_QUESTION) == ask["payload"]
    assert (await dialogs.take(rt, user=NURSE, kind=dialogs.COORDINATOR_QUESTION)).state == ask["payload"]
    assert await dialogs.take(rt, user=NURSE, kind=dialogs.COORDINATOR_QUESTION) == dialogs.Taken(None)

    await dialogs.remember(rt, **ask)
    rt.clock.advance(minutes=16)
    assert await dialogs.recall(rt, user=NURSE, kind=dialogs.COORDINATOR_QUESTION) is None
    assert await dialogs.take(rt, user=NURSE, kind=dialogs.COORDINATOR_QUESTION) == dialogs.Taken(None, lapsed=True)
    assert await dialogs.take(rt, user=NURSE, kind=dialogs.COORDINATOR_QUESTION) == dialogs.Taken(None)


async def test_open_dialogs_lists_only_this_users_unexpired_ones_and_forget_says_if_one_was_open(engine):
    rt = _rt(engine)
    await dialogs.remember(rt, user=NURSE, kind=dialogs.REMINDER_TIME, payload={}, ttl=timedelta(hours=1))
    await dialogs.remember(rt, user=NURSE, kind=dialogs.LOCALE, payload={"locale": "en"}, ttl=timedelta(minutes=5))
    await dialogs.remember(rt, user=Account.telegram(7).key, kind=dialogs.REMINDER_TIME, payload={},
                           ttl=timedelta(hours=1))
    rt.clock.advance(minutes=10)
    async with rt.session() as session:
        assert await dialogs.open_dialogs(session, channel_user_id=NURSE, now=rt.now()) == {dialogs.REMINDER_TIME: {}}
    assert await dialogs.forget(rt, user=NURSE, kind=dialogs.REMINDER_TIME) is True
    assert await dialogs.forget(rt, user=NURSE, kind=dialogs.REMINDER_TIME) is False


async def test_an_update_is_first_once_per_channel_and_old_records_are_pruned(engine):
    rt = _rt(engine)
    async with rt.session() as session:
        assert await seen_updates.first_time(session, channel="telegram", update_id=1, now=T0)
        assert not await seen_updates.first_time(session, channel="telegram", update_id=1, now=T0)
        assert await seen_updates.first_time(session, channel="email", update_id=1, now=T0)
        await dialogs.put(session, channel_user_id=NURSE, kind=dialogs.LOCALE, payload={}, now=T0,
                          ttl=timedelta(minutes=1))
        await session.commit()
    later = T0 + seen_updates.KEEP + timedelta(minutes=2)
    async with rt.session() as session:
        assert await seen_updates.first_time(session, channel="telegram", update_id=2, now=later)
        await session.commit()
        assert len((await session.exec(select(ProcessedUpdate))).all()) == 3  # pruned only now and then
        assert await seen_updates.first_time(session, channel="telegram", update_id=seen_updates.PRUNE_EVERY,
                                             now=later)
        await session.commit()
        left = {(row.channel, row.update_id) for row in (await session.exec(select(ProcessedUpdate))).all()}
        assert left == {("telegram", 2), ("telegram", seen_updates.PRUNE_EVERY)}
        assert (await session.exec(select(DialogState))).all() == []


def test_no_dialog_lives_in_a_process():
    """PTB's user_data/chat_data is one process's memory: lost on restart, unseen by a second instance."""
    root = Path(__file__).resolve().parents[2] / "bot"
    offenders = [str(path.relative_to(root)) for path in root.rglob("*.py")
                 if "user_data" in path.read_text("utf-8") or "chat_data" in path.read_text("utf-8")]
    assert offenders == []
