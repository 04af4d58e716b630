"""Invitation QR codes: the deep link as a PNG a patient can scan from the nurse's screen."""

from __future__ import annotations

import io

import segno


def qr_png(link: str, *, scale: int = 10) -> bytes:
    buffer = io.BytesIO()
    segno.make(link, error="m", micro=False).save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()
