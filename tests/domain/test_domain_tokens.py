"""Invitation tokens: format, entropy, hashing, status and the failure throttle."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.tokens import (
    TOKEN_PATTERN,
    InvitationStatus,
    Throttle,
    hash_token,
    invitation_status,
    looks_like_token,
    new_token,
    throttle_allows,
    token_matches,
)

UTC = timezone.utc
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ALPHABET = re.compile(r"[A-Za-z0-9_-]+")


def test_default_token_is_deep_link_safe():
    token = new_token()
    assert len(token) == 32
    assert ALPHABET.fullmatch(token)
    assert looks_like_token(token)


@pytest.mark.parametrize(("nbytes", "length"), [(16, 22), (24, 32), (48, 64)])
def test_token_sizes(nbytes, length):
    assert len(new_token(nbytes)) == length


@pytest.mark.parametrize("nbytes", [0, 8, 15, 49, 64])
def test_weak_or_overlong_tokens_are_refused(nbytes):
    with pytest.raises(ValueError):
        new_token(nbytes)


def test_tokens_are_unique():
    tokens = {new_token() for _ in range(5000)}
    assert len(tokens) == 5000


@given(nbytes=st.integers(16, 48))
def test_any_allowed_size_fits_telegram(nbytes):
    token = new_token(nbytes)
    assert len(token) <= 64
    assert ALPHABET.fullmatch(token)
    assert TOKEN_PATTERN.fullmatch(token) and TOKEN_PATTERN.match(token)


def test_hash_is_sha256_hex():
    digest = hash_token("abc")
    assert digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert hash_token("abc") == digest


@given(token=st.from_regex(TOKEN_PATTERN), other=st.from_regex(TOKEN_PATTERN))
def test_token_matches_only_its_own_hash(token, other):
    stored = hash_token(token)
    assert token_matches(token, stored)
    assert token_matches(token, stored.upper())
    assert token_matches(other, stored) == (other == token)


def test_token_matches_tolerates_garbage_stored_hash():
    assert not token_matches(new_token(), "")
    assert not token_matches(new_token(), "不是哈希")


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("A" * 22, True),
        ("a-b_c" * 10, True),
        ("A" * 64, True),
        ("A" * 21, False),
        ("A" * 65, False),
        ("A" * 30 + "=", False),
        ("A" * 30 + "\n", False),
        ("A" * 15 + " " + "A" * 15, False),
        ("研究药物" * 8, False),
        ("", False),
        (None, False),
    ],
)
def test_looks_like_token(text, ok):
    assert looks_like_token(text) is ok


# --- invitation status ------------------------------------------------------------------------


def status(*, expires=NOW + timedelta(days=1), used=None, revoked=None, now=NOW):
    return invitation_status(expires_at=expires, used_at=used, revoked_at=revoked, now=now)


def test_invitation_status():
    assert status() is InvitationStatus.VALID
    assert status(expires=NOW) is InvitationStatus.EXPIRED
    assert status(expires=NOW + timedelta(seconds=1)) is InvitationStatus.VALID
    assert status(used=NOW - timedelta(hours=1)) is InvitationStatus.USED
    assert status(revoked=NOW - timedelta(hours=1)) is InvitationStatus.REVOKED
    # The most deliberate fact wins: revoked over used over expired.
    assert status(expires=NOW - timedelta(days=1), used=NOW - timedelta(days=2)) is InvitationStatus.USED
    assert status(expires=NOW - timedelta(days=1), used=NOW, revoked=NOW) is InvitationStatus.REVOKED


def test_invitation_status_refuses_naive_instants():
    with pytest.raises(ValueError):
        status(now=datetime(2026, 12, 1, 9, 0))
    with pytest.raises(ValueError):
        status(expires=datetime(2026, 12, 2))
    with pytest.raises(ValueError):
        status(used=datetime(2026, 12, 1))


# --- throttle ----------------------------------------------------------------------------------


def test_throttle_allows_until_the_limit_within_the_window():
    recent = [NOW - timedelta(minutes=m) for m in (1, 5, 10, 20)]
    assert throttle_allows(recent, now=NOW)
    assert not throttle_allows([*recent, NOW - timedelta(minutes=59)], now=NOW)


def test_old_failures_slide_out_of_the_window():
    failures = [NOW - timedelta(minutes=m) for m in (1, 5, 10, 20)] + [NOW - timedelta(hours=1)]
    assert throttle_allows(failures, now=NOW)  # exactly one window old no longer counts
    assert throttle_allows([NOW - timedelta(hours=2)] * 50, now=NOW)


def test_future_stamped_failures_count():
    assert not throttle_allows([NOW + timedelta(minutes=1)] * 5, now=NOW)


def test_throttle_object_and_custom_limits():
    throttle = Throttle(limit=2, window=timedelta(minutes=10))
    assert throttle.allowed([NOW - timedelta(minutes=1)], now=NOW)
    assert not throttle.allowed([NOW - timedelta(minutes=1), NOW - timedelta(minutes=9)], now=NOW)
    assert throttle.allowed([NOW - timedelta(minutes=1), NOW - timedelta(minutes=11)], now=NOW)


def test_throttle_refuses_nonsense():
    with pytest.raises(ValueError):
        throttle_allows([], now=NOW, limit=0)
    with pytest.raises(ValueError):
        throttle_allows([], now=NOW, window=timedelta(0))
    with pytest.raises(ValueError):
        throttle_allows([datetime(2026, 12, 1)], now=NOW)


@given(offsets=st.lists(st.integers(-7200, 600), max_size=20), limit=st.integers(1, 10))
def test_throttle_counts_only_the_window(offsets, limit):
    failures = [NOW + timedelta(seconds=s) for s in offsets]
    in_window = sum(1 for s in offsets if s > -3600)
    assert throttle_allows(failures, now=NOW, limit=limit) == (in_window < limit)
