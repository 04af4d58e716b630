"""Writing an export as files (a directory for the CLI, a zip for Telegram): one CSV per table,
`codebook.csv` (every code used) and `manifest.json` (who, when, what, and a SHA-256 per file).

UTF-8 with a byte-order mark, so Excel opens Chinese text correctly; RFC 4180 quoting;
columns in the order of bot.services.exports.COLUMNS (documented in docs/exports.md). Text cells
that a spreadsheet would run as a formula (starting with = + - @, tab or carriage return) get a
leading apostrophe, per OWASP's CSV-injection advice; numbers are written as they are.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import zipfile
from functools import cache
from importlib import metadata
from pathlib import Path

from bot.services.exports import CODEBOOK_COLUMNS, COLUMNS, Export, utc

ENCODING = "utf-8-sig"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CODEBOOK = "codebook"
MANIFEST = "manifest.json"


def file_name(table: str) -> str:
    return f"{table}.csv"


def neutralise(value):
    """OWASP CSV injection: a text cell that could start a formula is prefixed with an apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(table: str, rows: list[dict], columns: list[str] | None = None) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns or COLUMNS[table], lineterminator="\r\n", extrasaction="raise")
    writer.writeheader()
    writer.writerows({key: neutralise(value) for key, value in row.items()} for row in rows)
    return buffer.getvalue()


def files(export: Export) -> dict[str, bytes]:
    """Every file of the export, manifest last (it holds the others' hashes)."""
    out = {file_name(table): csv_text(table, export.tables[table]).encode(ENCODING) for table in COLUMNS}
    out[file_name(CODEBOOK)] = csv_text(CODEBOOK, export.codebook, CODEBOOK_COLUMNS).encode(ENCODING)
    out[MANIFEST] = json.dumps(manifest(export, out), ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
    return out


def manifest(export: Export, written: dict[str, bytes]) -> dict:
    rows = {file_name(table): len(export.tables[table]) for table in COLUMNS}
    rows[file_name(CODEBOOK)] = len(export.codebook)
    return {
        "exported_at_utc": utc(export.created_at),
        "exported_by": export.exported_by,
        "site_filter": export.site_id or "all",
        "software": {"name": "adherence-bot", "version": software_version(), "git_revision": git_revision()},
        "config": export.facts,
        "files": {name: {"rows": rows[name], "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                  for name, data in sorted(written.items())},
        "encoding": "CSV: UTF-8 with BOM, RFC 4180, CRLF; columns in docs/exports.md",
    }


@cache
def software_version() -> str | None:
    try:
        return metadata.version("adherence-bot")
    except metadata.PackageNotFoundError:
        return None


@cache
def git_revision() -> str | None:
    """The source checkout's commit, when the bot runs from one (None from an installed package)."""
    root = Path(__file__).resolve().parents[2]
    try:
        result = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    revision = result.stdout.strip()
    return revision if result.returncode == 0 and len(revision) == 40 else None


def write_directory(export: Export, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in files(export).items():
        path = out / name
        path.write_bytes(data)
        written.append(path)
    return written


def zip_name(export: Export) -> str:
    return f"adherence-export-{export.site_id or 'all'}-{export.created_at.strftime('%Y%m%dT%H%MZ')}.zip"


def zip_bytes(export: Export) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files(export).items():
            archive.writestr(name, data)
    return buffer.getvalue()
