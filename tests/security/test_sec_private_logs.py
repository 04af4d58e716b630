"""A database error while saving a patient's note never writes the note (or any other bound
parameter) into the logs: engines are created with hide_parameters=True."""

import logging

import pytest
from sqlalchemy import text

from bot.db.engine import make_engine
from bot.db.models import SymptomReport
from tests.conftest import ON_POSTGRES
from tests.e2e.harness import running_bot
from tests.e2e.test_patient_days import enrolled_with_course

NOTE = "my name is Wang Xiuying, phone 13812345678"

if ON_POSTGRES:
    BREAK = ["CREATE FUNCTION forced_note_failure() RETURNS trigger LANGUAGE plpgsql AS "
             "$$ BEGIN RAISE EXCEPTION 'forced failure'; END $$",
             "CREATE TRIGGER forced_note_failure BEFORE UPDATE ON symptom_report FOR EACH ROW "
             "WHEN (NEW.note IS NOT NULL) EXECUTE FUNCTION forced_note_failure()"]
    REPAIR = ["DROP TRIGGER IF EXISTS forced_note_failure ON symptom_report",
              "DROP FUNCTION IF EXISTS forced_note_failure()"]
else:
    BREAK = ["CREATE TRIGGER forced_note_failure BEFORE UPDATE OF note ON symptom_report "
             "BEGIN SELECT RAISE(ABORT, 'forced failure'); END"]
    REPAIR = ["DROP TRIGGER IF EXISTS forced_note_failure"]


async def _run(url: str, statements: list[str]) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


def test_engines_hide_parameters():
    assert make_engine("sqlite+aiosqlite:///:memory:").sync_engine.hide_parameters


@pytest.mark.parametrize("language_code, button, user_id", [("en", "English", 7301)])
async def test_database_error_during_a_note_keeps_the_note_out_of_the_logs(engine, database_url, owner_database_url,
                                                                          caplog, language_code, button, user_id):
    async with running_bot(engine, database_url) as h:
        user = await enrolled_with_course(h, language_code, button, user_id)
        user.send_command("/report")
        await h.sandbox.wait_for(lambda: user.last_message.buttons and user.last_message.buttons[-1][1] == "s:_cancel")
        picker = user.last_message
        user.press(picker, "s:small_bruise")
        await h.sandbox.wait_for(lambda: picker.history)
        user.press(picker, "s:_send")
        await h.sandbox.wait_for(lambda: len(picker.history) >= 2 and picker.text.startswith("✅"))
        await _run(owner_database_url, BREAK)
        try:
            count = len(user.messages)
            user.send_text(NOTE)
            await h.sandbox.wait_for(lambda: len(user.messages) > count)
        finally:
            await _run(owner_database_url, REPAIR)
        [report] = await h.rows(SymptomReport)
        assert report.note is None
    logged = []
    for record in caplog.records:
        logged.append(record.getMessage())
        if record.exc_info:
            logged.append(logging.Formatter().formatException(record.exc_info))
        logged.append(record.exc_text or "")
    failures = [entry for entry in logged if "forced failure" in entry]
    assert failures, "the database error was not logged at all"
    assert any("hide_parameters" in entry for entry in failures)
    for entry in logged:
        assert "13812345678" not in entry and "Wang Xiuying" not in entry
