"""docs/conversations.md is written by the real bot; a change to any screen must regenerate it."""

import asyncio
import difflib

from bot.tools.conversations import DOCUMENT, write_conversations


def test_the_committed_conversations_document_is_current(tmp_path):
    fresh = asyncio.run(write_conversations(tmp_path / "conversations.md"))
    committed = DOCUMENT.read_text("utf-8") if DOCUMENT.is_file() else ""
    if fresh != committed:
        diff = "".join(list(difflib.unified_diff(committed.splitlines(True), fresh.splitlines(True),
                                                 "docs/conversations.md (committed)", "regenerated"))[:80])
        raise AssertionError("docs/conversations.md is stale: run `make conversations` and commit it.\n" + diff)


def test_the_document_shows_both_languages_and_hides_tokens():
    text = DOCUMENT.read_text("utf-8")
    for needed in ("请核对", "Please check:", "紧急症状报告", "EMERGENCY symptom report", "<token>"):
        assert needed in text
    assert "start=<token>" in text and "?start=" not in text.replace("start=<token>", "")
