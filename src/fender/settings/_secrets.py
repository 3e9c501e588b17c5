"""Placeholder-secret detection: whether a key is random enough to sign with.

One judgement (:func:`secret_weakness`) for the environment's ``SECRET_KEY`` and for the keys
the app itself signs with; a leaf that imports nothing of fender.
"""

from __future__ import annotations

import re

__all__ = [
    "MIN_SECRET_KEY_BYTES",
    "MIN_SECRET_KEY_DISTINCT",
    "MIN_SECRET_KEY_LENGTH",
    "PHRASE_SHARE",
    "PLACEHOLDER_PREFIXES",
    "PLACEHOLDER_SECRET_KEYS",
    "PLACEHOLDER_WORDS",
    "secret_weakness",
]

MIN_SECRET_KEY_LENGTH = 32
# A key given as raw bytes (Flask's os.urandom(24)): 16 random bytes hold the 128 bits that 32
# hex characters, the shortest text key accepted, hold.
MIN_SECRET_KEY_BYTES = 16
# Distinct characters below which a key of the right length is still a pattern, not a secret.
# Random keys come close: 32 hex characters (token_hex(16)) use fewer than 10 distinct ones
# once in 10**4 keys, fewer than 7 once in 5 * 10**9. Patterns with more characters are
# caught as repetitions, runs or words (_pattern_weakness).
MIN_SECRET_KEY_DISTINCT = 7
# Values copied from tutorials, templates and seed files; compared lower-cased and stripped.
PLACEHOLDER_SECRET_KEYS = frozenset(
    {
        # Flask's quickstart example, b'_5#y2L"F4Q8z\n\xec]/', read as latin-1.
        '_5#y2l"f4q8z\n\xec]/',
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "dev",
        "development",
        "development-secret-key",
        "insecure",
        "please-change-me",
        "production-secret-key",
        "secret",
        "secret-key",
        "secret_key",
        "secretkey",
        "super-secret",
        "supersecret",
        "test",
        "your-secret-key",
        "your-secret-key-here",
        "your_secret_key",
        "your_secret_key_here",
    }
)
# The HTTP statuses a health answer may be mapped to (FENDER_HEALTH_*_STATUS).
PLACEHOLDER_PREFIXES = ("your-secret", "your_secret", "change-me", "changeme", "django-insecure")
# The words placeholder phrases are made of ("my-super-secret-key-for-production-use"), lower
# case; see _phrase_words for how a key is read against them. Kept to that vocabulary: a word
# added here can only make a random key look more like a phrase.
PLACEHOLDER_WORDS = frozenset(
    """
    about admin and any api app application asdf asdfgh asdfghjkl at auth backend bar battery
    baz be bits by bytes change changeme changethis char chars characters complex config cookie
    correct crypto default demo dev devel develop development django do dont dummy encryption
    enough env environment ever example extra fake fastapi fill fixme flask foo for generate
    generated go goes good guess guest hard hash hello here hidden hmac horse insecure insert
    ipsum is it its jwt keep key keys know knows least length letmein local localhost long
    longer lorem make max maximum me mega min minimum must my never new no nobody not now of on
    one only or our pass passphrase passwd password placeholder please private prod production
    project put qux qwerty qwertyuiop random real really replace root salt sample secret secrets
    secure security service session sessions set settings should sign signing simple site some
    something staging staple starlette strong string super sure temp temporary test testing
    tests than that the this to todo token top type ultra unique unsafe use used user value very
    we web welcome will with world xxx you your zxcv zxcvbnm
    """.split()  # noqa: SIM905  (a paragraph of words reads and diffs better than 190 quoted)
)
# At least this share of a key's letters and digits explained by placeholder words, digit
# tokens and runs (abcd, 1234), with two words or runs, makes it a phrase. Random keys stay
# far below: over 10**6 keys each of token_urlsafe(24 and 48), token_hex(16 and 24) and
# Django's get_random_secret_key(), the most explained was 28% (a stray "me", "is", "key").
PHRASE_SHARE = 0.5
# A sequence this long (abcd, 4321, 1234) is typed, not drawn.
_MIN_RUN = 4
# Fewer words than this explain no phrase ("key" alone turns up in random keys).
_MIN_PHRASE_WORDS = 2
# Tokens that are all words make a phrase from this many; a word has this many letters (shorter
# ones are as likely in random keys).
_MIN_WORD_TOKENS = 3
_MIN_WORD_LETTERS = 3
_LONGEST_WORD = max(map(len, PLACEHOLDER_WORDS))
# Where people separate the words of a phrase; the pieces of a word: runs of lower-case letters
# (optionally Capitalized), of capitals, of digits (MySuperSecret2024 -> My Super Secret 2024).
_SEPARATORS = re.compile(r"[-_.\s:/+,|~]+")
_PIECES = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_VOWELS = frozenset("aeiouy")


def secret_weakness(key: str | bytes | None) -> str:
    """Why ``key`` is not a secret to sign with, as a predicate; ``""`` when it is one.

    One judgement for the environment's ``SECRET_KEY`` and for the app's own keys. Refused:
    nothing set; a known placeholder (:data:`PLACEHOLDER_SECRET_KEYS`, or one of
    :data:`PLACEHOLDER_PREFIXES` such as Django's ``django-insecure-``); fewer than
    :data:`MIN_SECRET_KEY_LENGTH` characters; fewer than :data:`MIN_SECRET_KEY_DISTINCT`
    distinct ones; a phrase of words (``production-secret-key-32-chars-minimum``), see
    :func:`_phrase_words`. A key given as bytes that are not text (``os.urandom(24)``) needs
    :data:`MIN_SECRET_KEY_BYTES` bytes. The reason never quotes the key.

    >>> secret_weakness("my-super-secret-key-for-production-use")
    'reads as a phrase of 7 words, not a random key'
    >>> secret_weakness("kq3-VZ0x8Tb2mN7pR4sW1yH6jL9cF5gD")
    ''
    """
    if isinstance(key, bytes):
        try:
            text = key.decode()
        except UnicodeDecodeError:
            return _binary_weakness(key)
        if not text.isprintable():
            return _binary_weakness(key)
        key = text
    if not key:
        return "is not set"
    normalised = key.strip().lower()
    if normalised.startswith("django-insecure"):
        return "is a django-insecure- key, which Django generates for development only"
    if normalised in PLACEHOLDER_SECRET_KEYS or normalised.startswith(PLACEHOLDER_PREFIXES):
        return "is a known placeholder value"
    return _pattern_weakness(key)


def _pattern_weakness(key: str) -> str:
    """Why ``key``, no known placeholder, is still not random: short, repetitive, words."""
    if len(key) < MIN_SECRET_KEY_LENGTH:
        return f"has {len(key)} characters, fewer than {MIN_SECRET_KEY_LENGTH}"
    if len(set(key)) < MIN_SECRET_KEY_DISTINCT:
        return f"uses only {len(set(key))} distinct characters: not random"
    period = _period(key)
    if 2 * period <= len(key):
        return f"repeats a pattern of {period} characters: not random"
    # A UUID's hex groups may happen to be digits and short words ("be"): random, not typed.
    words = 0 if _UUID.fullmatch(key.strip()) else _phrase_words(key)
    if words:
        return f"reads as a phrase of {words} words, not a random key"
    return ""


_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def _binary_weakness(key: bytes) -> str:
    if key.decode("latin-1").strip().lower() in PLACEHOLDER_SECRET_KEYS:
        return "is a known placeholder value"
    if len(key) < MIN_SECRET_KEY_BYTES:
        return f"has {len(key)} bytes, fewer than {MIN_SECRET_KEY_BYTES}"
    if len(set(key)) < MIN_SECRET_KEY_DISTINCT:
        return f"uses only {len(set(key))} distinct bytes: not random"
    return ""


def _phrase_words(key: str) -> int:
    """How many words make ``key`` a phrase someone typed; 0 when it reads as random.

    A key is split where people separate words (``-_. :/+,|~``), then into pieces by case and
    digits (``MySuperSecret2024`` -> My, Super, Secret, 2024). Explained are: pieces made of
    :data:`PLACEHOLDER_WORDS` (``changeme`` = change + me; a piece counts when its words
    cover it, or two thirds of it with at least two words: ``nobodyguesses``), tokens of
    digits alone (``-32-``) and runs such as ``abcd`` or ``1234``. A key is a phrase when
    those explain :data:`PHRASE_SHARE` of its letters and digits with at least two words or
    runs, or when it is three or more tokens that are all words (a vowel, natural case) or
    numbers (``purple-monkey-dishwasher``): a key is generated, not chosen, however good the
    words.

    Not entropy per character: a hex key (``token_hex``) has 4 bits of alphabet per
    character and English about 4.1, so no threshold on it tells them apart; words do.
    """
    letters_and_digits = sum(char.isalnum() for char in key)
    explained = words = 0
    tokens = [token for token in _SEPARATORS.split(key) if token]
    for token in tokens:
        if token.isdigit():
            runs, covered = _runs(token)
            explained += len(token)
            words += runs
            continue
        for piece in _PIECES.findall(token):
            runs, covered = _runs(piece)
            if runs:
                explained += covered
                words += runs
            elif not piece.isdigit():
                found, covered = _segment(piece.lower())
                if covered == len(piece) or (
                    found >= _MIN_PHRASE_WORDS and 3 * covered >= 2 * len(piece)
                ):
                    explained += covered
                    words += found
    if words >= _MIN_PHRASE_WORDS and explained >= PHRASE_SHARE * letters_and_digits:
        return words
    if len(tokens) >= _MIN_WORD_TOKENS and all(_word_like(token) for token in tokens):
        return len(tokens)
    return 0


def _period(text: str) -> int:
    """The shortest ``p`` such that ``text`` repeats its first ``p`` characters (KMP prefix)."""
    border = [0] * len(text)  # border[i]: longest proper prefix of text[: i + 1] ending there
    for i in range(1, len(text)):
        length = border[i - 1]
        while length and text[i] != text[length]:
            length = border[length - 1]
        border[i] = length + (text[i] == text[length])
    return len(text) - border[-1] if text else 0


def _runs(piece: str) -> tuple[int, int]:
    """(runs, characters in them) of consecutive characters in ``piece``: abcd, 4321, 1234."""
    text = piece.lower()
    runs = covered = start = 0
    while start < len(text):
        end, step = start + 1, 0
        while end < len(text):
            delta = ord(text[end]) - ord(text[end - 1])
            if delta not in (1, -1) or step not in (0, delta):
                break
            step, end = delta, end + 1
        if end - start >= _MIN_RUN:
            runs, covered, start = runs + 1, covered + end - start, end
        else:
            start += 1
    return runs, covered


def _segment(text: str) -> tuple[int, int]:
    """(words, characters covered) of the best reading of ``text`` as placeholder words.

    Dynamic programming over prefixes: the most characters covered, then the most words;
    characters no word covers are skipped. Words of two letters and more.
    """
    best = [(0, 0)] * (len(text) + 1)  # (covered, words) of each prefix
    for end in range(1, len(text) + 1):
        choice = best[end - 1]
        for start in range(max(0, end - _LONGEST_WORD), end - 1):
            if text[start:end] in PLACEHOLDER_WORDS:
                covered, found = best[start]
                choice = max(choice, (covered + end - start, found + 1))
        best[end] = choice
    covered, found = best[-1]
    return found, covered


def _word_like(token: str) -> bool:
    """A number, or a word as people write one: 3+ letters, a vowel, one case or Capitalized."""
    if token.isdigit():
        return True
    natural = token.islower() or token.isupper() or (token[0].isupper() and token[1:].islower())
    return (
        len(token) >= _MIN_WORD_LETTERS
        and token.isalpha()
        and token.isascii()
        and natural
        and not _VOWELS.isdisjoint(token.lower())
    )
