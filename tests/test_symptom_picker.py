"""The symptom picker: emergency signs first, short labels (full wording in the text), two to a
row where short, Send counts the ticks; Send stays second-to-last and Cancel last."""

import tomllib

from bot.channels.telegram.keyboards import as_markup
from bot.config import settings_from_mapping
from bot.channels.telegram.handlers.symptoms import _picker, _ticked
from bot.i18n import Translator
from tests.e2e.harness import EXAMPLE


class _Message:
    def __init__(self, markup):
        self.reply_markup = markup


def _settings():
    return settings_from_mapping(tomllib.loads(EXAMPLE.read_text("utf-8")), env={})


def test_emergency_signs_come_first_with_short_labels_and_the_full_wording_in_the_text():
    settings = _settings()
    for locale in ("en", "zh_Hans"):
        t = Translator(locale, "Asia/Shanghai")
        text, keyboard = _picker(t, settings, [], "NJ")
        buttons = [b for row in keyboard for b in row]
        by_code = settings.triage.by_code()
        codes = [b.data[2:] for b in buttons[:-2]]
        levels = [by_code[c].level for c in codes]
        assert levels == sorted(levels, key=("emergency", "same_day", "log").index)  # emergencies first
        assert all(by_code[c].label(locale) in text for c in codes)  # the full wording is in the text
        assert any(len(row) == 2 for row in keyboard[:-1])  # two columns where short
        assert buttons[-2].data == "s:_send:NJ" and buttons[-1].data == "s:_cancel"


def test_ticks_live_in_the_buttons_and_send_shows_the_count():
    settings = _settings()
    t = Translator("en", "Asia/Shanghai")
    _, keyboard = _picker(t, settings, ["black_stool", "fever"], "NJ")
    assert sorted(_ticked(_Message(as_markup(keyboard)), set(settings.triage.by_code()))) == ["black_stool", "fever"]
    send = [b for row in keyboard for b in row][-2]
    assert send.label == t._("📨 Send ({count})", count=2)
