"""Acknowledgement codes for alerts sent where there is no button (email).

A code names the alert and carries a keyed MAC of (alert, channel, address), so it proves which
recipient's copy it came from and cannot be guessed or moved to another alert. It is used once:
the first acknowledgement closes the alert; a later one only hears "already acknowledged".
Format: `<alert id>-<10 base32 characters>`, e.g. `123-K7Q2M9XZTA` (case and spaces ignored).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

MAC_CHARS = 10  # 50 bits
_CODE = re.compile(r"\A([0-9]{1,12})-([A-Z2-7]{%d})\Z" % MAC_CHARS)


def _mac(key: bytes, alert_id: int, channel: str, address: str) -> str:
    digest = hmac.new(key, f"ack:{alert_id}:{channel}:{address.lower()}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode()[:MAC_CHARS]


def ack_code(key: bytes, *, alert_id: int, channel: str, address: str) -> str:
    return f"{alert_id}-{_mac(key, alert_id, channel, address)}"


def parse(code: str) -> tuple[int, str] | None:
    """(alert id, mac) of a well-formed code, else None."""
    match = _CODE.match(re.sub(r"\s+", "", code or "").upper())
    return (int(match.group(1)), match.group(2)) if match else None


def issued_to(key: bytes, code: str, *, alert_id: int, channel: str, address: str) -> bool:
    parsed = parse(code)
    return parsed is not None and parsed[0] == alert_id and \
        hmac.compare_digest(parsed[1], _mac(key, alert_id, channel, address))
