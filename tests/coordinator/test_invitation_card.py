"""The printed invitation says what it is: under the QR code, the site, the subject id, the
expiry date and "scan with Telegram", in Chinese and English; and the export caption names the
files in words a nurse can use (no repository path)."""

import io
from datetime import datetime, timezone
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from bot.config import load_settings
from bot.i18n import Translator
from bot.render import coord_reports as report_views
from bot.reports import csv_files
from bot.reports.chart import font_covers
from bot.reports.qr import card_lines, invitation_card_png, qr_png
from bot.services.exports import COLUMNS

ROOT = Path(__file__).resolve().parents[2]
LINK = "https://t.me/adherence_trial_bot?start=abcDEF123"
EXPIRES = datetime(2026, 12, 8, 15, 59, tzinfo=timezone.utc)  # 23:59 in Shanghai


@pytest.fixture(scope="module")
def site():
    return load_settings(ROOT / "config.example.toml", env={}).sites[0]


def test_card_lines_carry_site_subject_expiry_and_scan_hint_in_both_languages(site):
    texts = [text for text, _ in card_lines(site=site, subject_id="NJ-017", expires_at=EXPIRES)]
    joined = "\n".join(texts)
    assert site.name_zh in texts and site.name_en in texts
    assert "受试者编号：NJ-017" in joined and "Subject NJ-017" in joined
    assert "有效期至 2026-12-08" in joined and "Valid until 2026-12-08" in joined
    assert "用 Telegram 扫描" in texts and "Scan with Telegram" in texts
    assert all(font_covers(text) for text in texts)  # every glyph drawable with the bundled font
    without = [text for text, _ in card_lines(site=site, subject_id=None, expires_at=EXPIRES)]
    assert not any("NJ-017" in text for text in without) and len(without) == len(texts) - 1


def test_card_is_a_scannable_png_with_the_text_below_the_code(site):
    png = invitation_card_png(LINK, site=site, subject_id="NJ-017", expires_at=EXPIRES)
    card = Image.open(io.BytesIO(png))
    code = Image.open(io.BytesIO(qr_png(LINK)))
    assert card.format == "PNG" and card.height > code.height + 150 and card.width >= code.width
    [barcode] = zxingcpp.read_barcodes(card)
    assert barcode.text == LINK
    below = card.convert("L").crop((0, code.height, card.width, card.height))
    assert below.getextrema()[0] < 100  # there is dark text under the code


@pytest.mark.parametrize("locale", ["zh_Hans", "en"])
def test_export_caption_names_the_files_not_a_repository_path(locale):
    t = Translator(locale, load_settings(ROOT / "config.example.toml", env={}).sites[0].tz)
    counts = {"patients": 2, "dose_days": 28, "symptom_reports": 1, "alerts": 1, "audit_log": 40}
    caption = report_views.export_caption(t, site_name="NJ", counts=counts)
    assert "docs/" not in caption and ".md" not in caption
    for table in COLUMNS:
        assert csv_files.file_name(table) in caption
    assert len(caption) <= 1024  # Telegram's caption limit
