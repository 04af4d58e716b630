"""Writing an export as CSV files (a directory for the CLI, a zip for Telegram).

UTF-8 with a byte-order mark, so Excel opens Chinese text correctly; RFC 4180 quoting;
columns in the order of bot.services.exports.COLUMNS (documented in docs/exports.md).
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

from bot.services.exports import COLUMNS, Export

ENCODING = "utf-8-sig"


def file_name(table: str) -> str:
    return f"{table}.csv"


def csv_text(table: str, rows: list[dict]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS[table], lineterminator="\r\n", extrasaction="raise")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_directory(export: Export, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for table in COLUMNS:
        path = out / file_name(table)
        path.write_text(csv_text(table, export.tables[table]), encoding=ENCODING, newline="")
        written.append(path)
    return written


def zip_name(export: Export) -> str:
    return f"adherence-export-{export.site_id or 'all'}-{export.created_at.strftime('%Y%m%dT%H%MZ')}.zip"


def zip_bytes(export: Export) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for table in COLUMNS:
            archive.writestr(file_name(table), csv_text(table, export.tables[table]).encode(ENCODING))
    return buffer.getvalue()
