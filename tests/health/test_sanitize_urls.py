"""Health output never shows a URL's password, whatever characters the password holds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fender.health import sanitize

# Printable, no whitespace (a URL in a message is one word); at least one unusual character.
password_st = st.text(
    st.characters(min_codepoint=33, max_codepoint=126), min_size=6, max_size=30
).filter(lambda p: any(c in p for c in "/?#@:%"))


@given(password_st, st.sampled_from(["redis", "rediss", "postgresql+psycopg", "amqp"]))
def test_a_password_in_a_message_is_masked(password, scheme):
    message = f"connect {scheme}://app:{password}@db.internal:5432/app failed: refused"
    shown = sanitize(message)
    assert password not in shown
    assert "db.internal:5432" in shown
    assert shown.startswith("connect ")
    assert shown.endswith("failed: refused")
