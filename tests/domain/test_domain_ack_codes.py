"""Acknowledgement codes: bound to one alert and one recipient, unforgeable without the key,
forgiving about case and spaces."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.ack_codes import MAC_CHARS, ack_code, issued_to, parse

KEY = bytes(range(32))
NURSE = ("email", "nurse1@hospital.example.org")


def test_a_code_names_its_alert_and_proves_its_recipient():
    code = ack_code(KEY, alert_id=123, channel=NURSE[0], address=NURSE[1])
    assert code.startswith("123-") and len(code) == 4 + MAC_CHARS
    assert parse(code) == (123, code[4:])
    assert issued_to(KEY, code, alert_id=123, channel=NURSE[0], address=NURSE[1])
    assert issued_to(KEY, f"  {code.lower()} ", alert_id=123, channel=NURSE[0], address=NURSE[1].upper())
    assert not issued_to(KEY, code, alert_id=124, channel=NURSE[0], address=NURSE[1])  # another alert
    assert not issued_to(KEY, code, alert_id=123, channel="email", address="oncall@hospital.example.org")
    assert not issued_to(bytes(32), code, alert_id=123, channel=NURSE[0], address=NURSE[1])  # another key


@given(st.text(max_size=40) | st.from_regex(r"\A1-[A-Z2-7]{10}\Z"))
def test_guessed_codes_acknowledge_nothing(text):
    assert not issued_to(KEY, text, alert_id=1, channel=NURSE[0], address=NURSE[1])


def test_malformed_codes_are_refused():
    for text in ("", "123", "123-", "abc-ABCDEFGHIJ", "123-ABCDEFGHI", "123-ABCDEFGHIJK", "123-ABCDEFGH1J"):
        assert parse(text) is None
