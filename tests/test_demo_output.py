"""`demo --out DIR` never deletes a folder it did not create."""

import subprocess
import sys

import pytest

from bot.demo import MARKER, DemoOutputRefused, prepare_output


def test_a_non_empty_folder_the_demo_did_not_create_is_refused_and_kept(tmp_path):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.docx").write_text("years of work", "utf-8")
    result = subprocess.run([sys.executable, "-m", "bot", "demo", "--out", str(precious)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "not empty" in result.stderr and "--out" in result.stderr and "Traceback" not in result.stderr
    assert (precious / "chapter1.docx").read_text("utf-8") == "years of work"


def test_a_file_is_refused(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("keep", "utf-8")
    with pytest.raises(DemoOutputRefused):
        prepare_output(target)
    assert target.read_text("utf-8") == "keep"


def test_new_empty_and_own_folders_are_used(tmp_path):
    fresh = prepare_output(tmp_path / "new" / "demo")
    assert (fresh / MARKER).is_file()
    (fresh / "chart.png").write_bytes(b"old")
    again = prepare_output(fresh)  # the demo's own output from a previous run is replaced
    assert sorted(p.name for p in again.iterdir()) == [MARKER]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (prepare_output(empty) / MARKER).is_file()
