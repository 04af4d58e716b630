import re
from datetime import date, datetime, timezone

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from bot.i18n import LOCALES_DIR, SUPPORTED, Translator, resolve_locale

ROOT = LOCALES_DIR.parent
PLACEHOLDER = re.compile(r"{\w+}")


def _catalog(locale):
    with (LOCALES_DIR / locale / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale=locale)


def _source_ids() -> set[str]:
    ids = set()
    for package in ("bot", "scheduler"):
        for _, _, message, _, _ in extract_from_dir(ROOT / package, method_map=[("**.py", "python")]):
            ids.add(message if isinstance(message, str) else message[0])
    return ids


@pytest.mark.parametrize("locale", SUPPORTED)
def test_every_source_message_is_translated(locale):
    catalog = _catalog(locale)
    translated = {m.id: m.string for m in catalog if m.id}
    missing = sorted(i for i in _source_ids() if not translated.get(i))
    assert not missing, f"{locale}: {len(missing)} untranslated, e.g. {missing[:5]}"
    fuzzy = [m.id for m in catalog if m.id and m.fuzzy]
    assert not fuzzy


@pytest.mark.parametrize("locale", SUPPORTED)
def test_placeholders_survive_translation_and_catalog_compiles(locale, tmp_path):
    catalog = _catalog(locale)
    for message in catalog:
        if message.id:
            assert set(PLACEHOLDER.findall(message.id)) == set(PLACEHOLDER.findall(message.string)), message.id
    with (tmp_path / "messages.mo").open("wb") as handle:
        write_mo(handle, catalog)
    assert (tmp_path / "messages.mo").stat().st_size > 1000


def test_chinese_catalog_is_really_chinese():
    t = Translator("zh_Hans")
    assert t._("✅ Taken") != "✅ Taken" and re.search(r"[\u4e00-\u9fff]", t._("✅ Taken"))
    assert Translator("en")._("✅ Taken") == "✅ Taken"


@pytest.mark.parametrize(
    "stored, code, expected",
    [
        (None, "zh-hans", "zh_Hans"), (None, "zh-CN", "zh_Hans"), (None, "zh", "zh_Hans"), (None, "zh-SG", "zh_Hans"),
        (None, "zh-hant", "zh_Hans"), (None, "zh-TW", "zh_Hans"), (None, "en", "en"), (None, "en-GB", "en"),
        (None, "ru", "en"), (None, None, "zh_Hans"), ("en", "zh-hans", "en"), ("zh_Hans", "en", "zh_Hans"),
    ],
)
def test_locale_resolution(stored, code, expected):
    assert resolve_locale(stored=stored, language_code=code) == expected


def test_missing_language_uses_site_default():
    assert resolve_locale(language_code=None, default="en") == "en"


def test_dates_and_times_in_user_locale_and_zone():
    instant = datetime(2026, 12, 2, 0, 30, tzinfo=timezone.utc)
    zh = Translator("zh_Hans", "Asia/Shanghai")
    en = Translator("en", "America/New_York")
    assert zh.time(instant) == "08:30" and en.time(instant) == "19:30"
    assert "12月2日" in zh.date(date(2026, 12, 2)) and "Dec" in en.date(date(2026, 12, 2))
