"""Catalog upkeep for developers: `python -m bot.tools.catalogs fill-en`.

English source strings are their own English translation; copying them keeps the en catalog
complete so the completeness test checks real gaps (the Chinese ones) and not a formality.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

from bot.i18n import LOCALES_DIR


def fill_english(path: Path = LOCALES_DIR / "en" / "LC_MESSAGES" / "messages.po") -> int:
    with path.open("rb") as handle:
        catalog = read_po(handle)
    filled = 0
    for message in catalog:
        if message.id and not message.string:
            message.string = message.id
            filled += 1
        message.flags.discard("fuzzy")
    with path.open("wb") as handle:
        write_po(handle, catalog, width=0, omit_header=False, include_previous=False)
    return filled


if __name__ == "__main__":
    if sys.argv[1:] != ["fill-en"]:
        raise SystemExit("usage: python -m bot.tools.catalogs fill-en")
    print(f"filled {fill_english()} English entries")
