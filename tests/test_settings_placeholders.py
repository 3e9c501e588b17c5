"""Placeholder secrets: phrases of words are refused, random keys never are."""

from __future__ import annotations

import secrets

import pytest
from django.core.management.utils import get_random_secret_key
from hypothesis import given
from hypothesis import strategies as st

from fender._status import Status
from fender.settings import (
    PHRASE_SHARE,
    PLACEHOLDER_WORDS,
    load_settings,
    production_findings,
    secret_weakness,
)

# Each of these passed as a SECRET_KEY before: 32 characters or more, 10 distinct or more, on
# no list. People type them into .env files, compose files and CI variables.
PLACEHOLDER_PHRASES = [
    "production-secret-key-32-chars-minimum",
    "my-super-secret-key-for-production-use",
    "this-is-my-really-long-secret-key-nobody-will-guess-42",
    "a-very-long-and-complex-production-secret",
    "fastapi-jwt-signing-key-do-not-share-2024",
    "MySuperSecretKeyForProductionUse2024",
    "supersecretpasswordforproduction",
    "supersecretkeythatnobodyknows12345",
    "Super Secret Session Key For The Web App",
    "SECRET_KEY_FOR_PRODUCTION_DO_NOT_USE_IN_DEV",
    "purple-monkey-dishwasher-elephant-banana",
    "correct horse battery staple is my key",
    "secret-2024-12345678901234567890",
    "0123456789abcdefghijklmnopqrstuvwxyz",
]


# Refused before too: a known prefix, and repetitions that MIN_SECRET_KEY_DISTINCT caught when
# it was 10 (lowered, since 1 in 10**4 token_hex(16) keys has fewer than 10 distinct characters).
STILL_REFUSED = [
    "changeme-please-this-is-not-secure",
    "1q2w3e4r1q2w3e4r1q2w3e4r1q2w3e4r",
    "password1password1password1password1",
    "abcdefghabcdefghabcdefghabcdefgh",
]


def production(**env: str):
    return load_settings({"FENDER_ENV": "production", **env}, env_file=None)


@pytest.mark.parametrize("phrase", PLACEHOLDER_PHRASES + STILL_REFUSED)
def test_placeholder_phrases_are_refused_in_production(phrase):
    assert len(phrase) >= 32
    (finding,) = [
        f for f in production_findings(production(SECRET_KEY=phrase)) if f.check == "secret_key"
    ]
    assert finding.status is Status.FAIL
    assert phrase not in finding.reason


@pytest.mark.parametrize(
    "key",
    [
        # Words around a random part as long as a key: the random part is the secret.
        "production-secret-key-" + "Bl2zHFpQOwoLaRYJsqbAqg",
        "kq3-VZ0x8Tb2mN7pR4sW1yH6jL9cF5gD",
        # 32 hex characters with 9 distinct ones: random, and 1 in 10**4 token_hex(16) keys.
        "48aec89dc874944c4888a7114d17e84d",
        # A uuid4 whose groups happen to read as digits and runs (1 in about 33,000).
        "72636744-3645-4c40-961c-401238606543",
    ],
)
def test_random_keys_with_words_or_few_characters_pass(key):
    assert secret_weakness(key) == ""


@given(n=st.integers(min_value=24, max_value=128))
def test_token_urlsafe_always_passes(n):
    key = secrets.token_urlsafe(n)
    assert secret_weakness(key) == "", key


@given(n=st.integers(min_value=24, max_value=128))
def test_token_hex_always_passes(n):
    key = secrets.token_hex(n)
    assert secret_weakness(key) == "", key


def test_many_random_keys_pass():
    # The property tests draw a few hundred keys; the rule's margin (random keys explained to
    # at most ~28% by words, against PHRASE_SHARE) is worth a larger sample once.
    assert PHRASE_SHARE == 0.5
    makers = [
        lambda: secrets.token_urlsafe(24),
        lambda: secrets.token_hex(24),
        get_random_secret_key,
    ]
    refused = [
        key for make in makers for key in (make() for _ in range(3000)) if secret_weakness(key)
    ]
    assert refused == []


@pytest.mark.parametrize(
    ("key", "fragment"),
    [
        (None, "is not set"),
        ("", "is not set"),
        ("dev", "is a known placeholder value"),
        ("django-insecure-" + "x1" * 25, "django-insecure- key"),
        ("short-but-random-7Hq", "has 20 characters, fewer than 32"),
        ("a" * 64, "uses only 1 distinct characters"),
        ("abcdefgh" * 5, "repeats a pattern of 8 characters"),
        ("production-secret-key-32-chars-minimum", "reads as a phrase of 5 words"),
        (b'_5#y2L"F4Q8z\n\xec]/', "is a known placeholder value"),  # Flask's quickstart key
        (b"\x00\x01\x02\xff\xfe\xfd\x80", "has 7 bytes, fewer than 16"),
        (b"production-secret-key-32-chars-minimum", "reads as a phrase"),
    ],
)
def test_each_weakness_says_why_without_the_key(key, fragment):
    reason = secret_weakness(key)
    assert fragment in reason
    if isinstance(key, str) and len(key) > 3:
        assert key not in reason


def test_random_bytes_pass():
    assert secret_weakness(secrets.token_bytes(16)) == ""
    assert secret_weakness(secrets.token_bytes(24)) == ""


def test_the_word_list_is_lower_case_words():
    assert all(word.isalpha() and word.islower() and len(word) >= 2 for word in PLACEHOLDER_WORDS)
