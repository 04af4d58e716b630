"""Per-user localization with Babel catalogs. There is no process-global current language:
every message is rendered with the Translator of the person it is for.

Mark strings as `t._("Day {day} of {total}", day=3, total=14)`: the message id is a plain
literal (pybabel extracts it) and placeholders are filled after translation.
"""

from __future__ import annotations

import gettext
from datetime import date, datetime, time
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, format_time

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"
SUPPORTED = ("zh_Hans", "en")
DEFAULT_LOCALE = "zh_Hans"


def resolve_locale(*, stored: str | None = None, language_code: str | None = None, default: str = DEFAULT_LOCALE) -> str:
    """The user's stored choice, else Telegram's language_code mapped to exactly one catalog,
    else the site default. Every Chinese variant maps to zh_Hans until a Traditional catalog exists."""
    if stored in SUPPORTED:
        return stored
    if language_code:
        primary = language_code.replace("_", "-").split("-")[0].lower()
        return "zh_Hans" if primary == "zh" else "en"
    return default if default in SUPPORTED else DEFAULT_LOCALE


class CatalogMissing(RuntimeError):
    pass


@cache
def _translations(locale: str) -> gettext.GNUTranslations:
    try:
        return gettext.translation(DOMAIN, localedir=str(LOCALES_DIR), languages=[locale])
    except FileNotFoundError:
        raise CatalogMissing(
            f"compiled catalog for {locale} not found under {LOCALES_DIR}; run `make catalogs`"
        ) from None


class Translator:
    """Translation plus Babel formatting for one locale and one timezone."""

    def __init__(self, locale: str, tz: ZoneInfo | str = "Asia/Shanghai") -> None:
        if locale not in SUPPORTED:
            raise ValueError(f"unsupported locale {locale!r}")
        self.locale = locale
        self.babel_locale = Locale.parse(locale)
        self.tz = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
        self._catalog = _translations(locale)

    def _(self, message: str, /, **values: object) -> str:
        text = self._catalog.gettext(message)
        return text.format(**values) if values else text

    def n_(self, singular: str, plural: str, count: int, /, **values: object) -> str:
        text = self._catalog.ngettext(singular, plural, count)
        return text.format(count=count, **values)

    @property
    def is_zh(self) -> bool:
        return self.locale.startswith("zh")

    def date(self, value: date, form: str = "medium") -> str:
        if self.is_zh and form == "medium":
            return format_date(value, "M月d日 EEE", locale=self.babel_locale)
        if form == "medium":
            return format_date(value, "EEE d MMM", locale=self.babel_locale)
        return format_date(value, form, locale=self.babel_locale)

    def time(self, value: datetime | time) -> str:
        if isinstance(value, datetime):
            value = value.astimezone(self.tz)
        return format_time(value, "HH:mm", locale=self.babel_locale)

    def datetime(self, value: datetime) -> str:
        local = value.astimezone(self.tz)
        pattern = "M月d日 HH:mm" if self.is_zh else "d MMM HH:mm"
        return format_datetime(local, pattern, tzinfo=self.tz, locale=self.babel_locale)


def translator(locale: str, tz: ZoneInfo | str = "Asia/Shanghai") -> Translator:
    return Translator(locale, tz)
