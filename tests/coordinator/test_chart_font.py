"""A Chinese coordinator's chart is in Chinese on a machine with no CJK font installed: the
font shipped in bot/reports/fonts covers every label, and it is the font matplotlib uses."""

import subprocess
import sys
import warnings
from datetime import date
from pathlib import Path

import pytest

from bot.i18n import Translator
from bot.reports import chart
from bot.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 12, 2)


@pytest.fixture(scope="module")
def sites():
    return load_settings(ROOT / "config.example.toml", env={}).sites


def _cjk(text: str) -> bool:
    return any("\u3000" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef" for ch in text)


def _drawn_texts(figure):
    axes = figure.axes[0]
    texts = list(figure.texts) + [axes.xaxis.label] + list(figure.legends[0].get_texts())
    return [t for t in texts if t.get_text()]


def test_the_machine_under_test_has_no_system_cjk_font():
    """The proof below means something only where no CJK font is installed (as on a fresh host):
    fc-list, where present, must find none outside the repository."""
    from matplotlib import font_manager

    system = [f for f in font_manager.findSystemFonts() if "NotoSansSC-Subset" not in f]
    covering = []
    for path in system:
        try:
            from matplotlib import ft2font
            charmap = ft2font.FT2Font(path).get_charmap()
        except (OSError, RuntimeError, ValueError):
            continue
        if all(ord(ch) in charmap for ch in "依从性"):
            covering.append(path)
    if covering:
        pytest.fail(f"a system CJK font is installed ({covering[0]}); this check needs a machine without one")


@pytest.mark.parametrize("site_index", [0, 1])
def test_zh_chart_labels_are_chinese_and_every_glyph_is_in_the_font_used(sites, site_index):
    site = sites[site_index]
    t = Translator("zh_Hans", site.tz)
    rows = [chart.ChartRow("NJ-017 C2", ["taken", "missed", "not_reported", "scheduled"], 3)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph … missing from font(s)"
        figure = chart.build_figure(rows, columns=14, t=t, site=site, day=DAY)
        png = chart.to_png(figure)
    assert png.startswith(b"\x89PNG")
    texts = _drawn_texts(figure)
    assert chart.label_translator(t, site, DAY).locale == "zh_Hans"
    assert texts[0].get_text() == chart.title_of(t, site, DAY) and site.name_zh in texts[0].get_text()
    assert t._("Course day") in {text.get_text() for text in texts}
    from matplotlib import font_manager, ft2font

    for text in texts:
        label = text.get_text()
        if not _cjk(label):
            continue
        # matplotlib draws each character with the first family in the list that has it.
        properties = text.get_fontproperties()
        fonts = []
        for family in properties.get_family():
            single = properties.copy()
            single.set_family(family)
            path = font_manager.findfont(single, fallback_to_default=False)
            fonts.append((Path(path).resolve(), ft2font.FT2Font(path).get_charmap()))
        assert fonts[0][0] == chart.CJK_FONT_FILE.resolve(), (label, fonts[0][0])
        for ch in label:
            if ch.isspace():
                continue
            used = next((path for path, charmap in fonts if ord(ch) in charmap), None)
            assert used is not None, (label, ch)
            if _cjk(ch):
                assert used == chart.CJK_FONT_FILE.resolve(), (label, ch, used)
    assert sum(_cjk(text.get_text()) for text in texts) >= 5  # title, axis and legend are Chinese


def test_every_zh_catalog_string_and_example_label_is_covered():
    catalog = (ROOT / "locales/zh_Hans/LC_MESSAGES/messages.po").read_text("utf-8")
    strings = [line[len('msgstr "'):-1] for line in catalog.splitlines() if line.startswith('msgstr "')]
    example = (ROOT / "config.example.toml").read_text("utf-8")
    missing = sorted({ch for text in strings + [example] for ch in text
                      if _cjk(ch) and not chart.font_covers(ch)})
    assert not missing, f"characters missing from the bundled font: {''.join(missing)}"


def test_a_label_the_font_cannot_draw_falls_back_to_english(sites):
    odd = sites[0].model_copy(update={"name_zh": "𠀀医院"})  # a CJK Extension B character outside GB 2312
    t = Translator("zh_Hans", odd.tz)
    assert chart.label_translator(t, odd, DAY).locale == "en"


def test_font_and_license_ship_with_the_package():
    assert chart.CJK_FONT_FILE.is_file() and chart.CJK_FONT_FILE.stat().st_size < 4_000_000
    license_text = (chart.CJK_FONT_FILE.parent / "OFL.txt").read_text("utf-8")
    assert "SIL Open Font License" in license_text
    pyproject = (ROOT / "pyproject.toml").read_text("utf-8")
    assert "reports/fonts/*" in pyproject


def test_matplotlib_is_imported_only_when_a_chart_is_made():
    code = ("import sys\n"
            "import bot.cli, bot.runner, bot.app, bot.channels.telegram.handlers.coord_reports, bot.render.coord_reports\n"
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported at start-up'\n"
            "from bot.reports import chart\n"
            "assert 'matplotlib' not in sys.modules\n"
            "chart.cjk_font()\n"
            "assert 'matplotlib' in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
