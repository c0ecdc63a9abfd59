"""API key format and verification, without a database."""

from __future__ import annotations

import hmac

import pytest

from app.core import security
from app.core.security import generate_api_key, hash_secret, secret_matches, split_api_key

PREFIX = "0123456789ab"
SECRET = "s" * 43


def test_generated_key_splits_back_into_its_prefix_and_secret() -> None:
    generated = generate_api_key()
    parts = split_api_key(generated.plaintext)
    assert parts is not None
    prefix, secret = parts
    assert prefix == generated.prefix
    assert hash_secret(secret) == generated.secret_hash
    assert secret_matches(secret, generated.secret_hash)


def test_generated_secrets_carry_at_least_128_bits() -> None:
    secrets_seen = set()
    for _ in range(200):
        parts = split_api_key(generate_api_key().plaintext)
        assert parts is not None
        secret = parts[1]
        assert len(secret) >= 22  # base64url: 6 bits a character
        secrets_seen.add(secret)
    assert len(secrets_seen) == 200


def test_secret_with_underscores_still_splits() -> None:
    assert split_api_key(f"pulse_{PREFIX}_a_b_{SECRET}") == (PREFIX, f"a_b_{SECRET}")


@pytest.mark.parametrize(
    "token",
    [
        f"pulsE_{PREFIX}_{SECRET}",
        f"PULSE_{PREFIX}_{SECRET}",
        f"puls_{PREFIX}_{SECRET}",
        f"pulsex_{PREFIX}_{SECRET}",
        f"sk_{PREFIX}_{SECRET}",
        f"{PREFIX}_{SECRET}",
        f"pulse_{PREFIX}",
        f"pulse-{PREFIX}-{SECRET}",
        "pulse__" + SECRET,
        f"pulse_{PREFIX[:-1]}_{SECRET}",  # 11 hex digits
        f"pulse_{PREFIX}c_{SECRET}",  # 13 hex digits
        f"pulse_{PREFIX.upper()}_{SECRET}",
        f"pulse_0123456789ag_{SECRET}",  # not hex
        f"pulse_{PREFIX}_{'s' * 31}",  # secret too short
        f"pulse_{PREFIX}_{'s' * 129}",  # secret too long
        f"pulse_{PREFIX}_",
        "",
    ],
)
def test_split_rejects_malformed_keys(token: str) -> None:
    assert split_api_key(token) is None


@pytest.mark.parametrize("length", [32, 128])
def test_split_accepts_secrets_at_the_length_bounds(length: int) -> None:
    assert split_api_key(f"pulse_{PREFIX}_{'s' * length}") == (PREFIX, "s" * length)


def test_secret_matches_only_its_own_hash() -> None:
    stored = hash_secret(SECRET)
    assert secret_matches(SECRET, stored)
    assert not secret_matches(SECRET + "x", stored)
    assert not secret_matches("", stored)
    assert not secret_matches(SECRET, stored.upper())


def test_secret_with_non_ascii_characters_is_refused_not_crashing() -> None:
    assert not secret_matches("ß" * 40, hash_secret(SECRET))


def test_secret_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[object, object]] = []
    real_compare = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    stored = hash_secret(SECRET)
    assert secret_matches(SECRET, stored)
    assert not secret_matches("t" * 43, stored)
    assert calls == [(stored, stored), (hash_secret("t" * 43), stored)]
