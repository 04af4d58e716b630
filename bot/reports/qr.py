"""Invitation QR codes: the deep link as a PNG a patient can scan from the nurse's screen or a
printed copy. Under the code, in Chinese and English: the site, the subject id (if any), the
expiry date and "scan with Telegram", so a printout says what it is and until when it works.

Drawn with Pillow (matplotlib's own dependency, so nothing new) and the bundled CJK font.
"""

from __future__ import annotations

import io
from datetime import datetime
from functools import cache

import segno
from PIL import Image, ImageDraw, ImageFont

from bot.i18n import Translator
from bot.reports.chart import CJK_FONT_FILE

MARGIN = 24
LINE_GAP = 8


def qr_png(link: str, *, scale: int = 10) -> bytes:
    buffer = io.BytesIO()
    segno.make(link, error="m", micro=False).save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


@cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(CJK_FONT_FILE), size)


def card_lines(*, site, subject_id: str | None, expires_at: datetime) -> list[tuple[str, int]]:
    """(text, font size) per line, Chinese first, each fact in both languages."""
    zh, en = Translator("zh_Hans", site.tz), Translator("en", site.tz)
    expires = expires_at.astimezone(site.tz).date().isoformat()
    lines = [(site.name("zh_Hans"), 30), (site.name("en"), 24)]
    if subject_id:
        lines.append((" · ".join(t._("Subject {subject}", subject=subject_id) for t in (zh, en)), 26))
    lines.append((" · ".join(t._("Valid until {date}", date=expires) for t in (zh, en)), 26))
    lines.append((zh._("Scan with Telegram"), 30))
    lines.append((en._("Scan with Telegram"), 26))
    return lines


def invitation_card_png(link: str, *, site, subject_id: str | None, expires_at: datetime, scale: int = 10) -> bytes:
    code = Image.open(io.BytesIO(qr_png(link, scale=scale))).convert("RGB")
    lines = card_lines(site=site, subject_id=subject_id, expires_at=expires_at)
    measure = ImageDraw.Draw(code)
    boxes = [measure.textbbox((0, 0), text, font=_font(size)) for text, size in lines]
    width = max([code.width] + [box[2] - box[0] + 2 * MARGIN for box in boxes])
    height = code.height + sum(box[3] - box[1] + LINE_GAP for box in boxes) + MARGIN
    card = Image.new("RGB", (width, height), "white")
    card.paste(code, ((width - code.width) // 2, 0))
    draw = ImageDraw.Draw(card)
    y = code.height
    for (text, size), box in zip(lines, boxes, strict=True):
        draw.text(((width - (box[2] - box[0])) // 2 - box[0], y - box[1]), text, font=_font(size), fill="black")
        y += box[3] - box[1] + LINE_GAP
    buffer = io.BytesIO()
    card.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
