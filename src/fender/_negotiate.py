"""Content negotiation for fender's own endpoints: which of a few media types a client prefers.

One rule for every endpoint (health bodies, ``/metrics``, ``/status``), after RFC 9110 12.5.1:
for each offer, the most specific media range of ``Accept`` that matches it gives its quality;
``q=0`` means "not this". fender's endpoints never answer 406: with nothing acceptable, the
default offer is sent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, TypeVar

__all__ = ["ACCEPT_LIMIT", "preferred"]

ACCEPT_LIMIT: Final = 2048
"""Characters of ``Accept`` read: a longer header is cut, not parsed at any length."""

_EXACT: Final = 3  # a media range naming the type: beats "type/*" (2) and "*/*" (1)

Offer = TypeVar("Offer", bound=str)


def preferred(accept: str | None, offers: Sequence[Offer]) -> Offer:
    """The offer ``accept`` prefers; ``offers[0]`` is the default.

    Another offer is chosen when its quality is higher than the default's, or equal (and not
    zero) and its type was named exactly: ``*/*`` or ``application/*`` alone give the default,
    ``text/html, application/json`` gives the first named non-default offer. Parameters other
    than ``q`` (``version=1.0.0``, ``charset``) are ignored.

    Raises:
        ValueError: ``offers`` is empty (a programming error).
    """
    if not offers:
        raise ValueError("preferred() needs at least one offer")
    default = offers[0]
    if not accept:
        return default
    best = dict.fromkeys(offers, (0, 0.0))  # (specificity, quality)
    for media_range in accept[:ACCEPT_LIMIT].split(","):
        media, *params = media_range.split(";")
        media = media.strip().lower()
        quality = _quality(params)
        for offer in offers:
            specificity = _specificity(media, offer)
            if specificity > best[offer][0]:
                best[offer] = (specificity, quality)
    choice, choice_quality = default, best[default][1]
    for offer in offers[1:]:
        specificity, quality = best[offer]
        if quality > choice_quality or (quality == choice_quality > 0 and specificity == _EXACT):
            choice, choice_quality = offer, quality
    return choice


def _quality(params: list[str]) -> float:
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                quality = float(value.strip())
            except ValueError:
                return 0.0
            return 0.0 if math.isnan(quality) else min(max(quality, 0.0), 1.0)
    return 1.0


def _specificity(media: str, offer: str) -> int:
    if media == offer:
        return _EXACT
    if media.endswith("/*") and offer.startswith(media[:-1]):
        return 2
    return 1 if media == "*/*" else 0
