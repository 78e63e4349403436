"""Short ids for people: the shortest unique start of an id's random part.

A UUIDv7 begins with a millisecond timestamp, so sessions made close together
share their first eight or more characters (3,000 sessions made in 12 s all
began ``01a22a80``). The last group of the id (12 hex digits) is random, so its
first few characters tell sessions apart: the short id of
``019a93b9-f380-7600-98ff-940e6b99603c`` is ``940e6b`` unless another id's last
group also starts that way, in which case it is lengthened, as git lengthens an
abbreviation only when it must, to at most 12 characters.

An id that is not a UUID (an application may choose its own) is its own short
form, cut with ``…`` if long. :func:`resolve` accepts a short id, a whole id or
any unique prefix of one.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from typing import Final

__all__ = ["MAX_LENGTH", "MIN_LENGTH", "Ambiguous", "random_part", "resolve", "short_ids"]

MIN_LENGTH: Final = 6
"""Fewer would start to collide in a store of a few hundred sessions, and a short id should keep working."""
MAX_LENGTH: Final = 12
_UUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-([0-9a-f]{12})")


class Ambiguous(ValueError):
    """A short id or prefix names more than one id; ``matches`` holds them, sorted."""

    def __init__(self, text: str, matches: list[str]) -> None:
        super().__init__(f"{text!r} matches {len(matches)} ids")
        self.matches = matches


def random_part(identifier: str) -> str | None:
    """The last group of a UUID (12 random hex digits in a UUIDv7), or None for an id that is not a UUID."""
    match = _UUID.fullmatch(identifier)
    return match.group(1) if match else None


def short_ids(ids: Iterable[str], minimum: int = MIN_LENGTH) -> dict[str, str]:
    """Each id's short form among ``ids``: the shortest start (at least ``minimum``) of its random part that
    no other id's random part shares; an id that is not a UUID stands for itself (cut with ``…`` if long)."""
    tails = {i: t for i in ids if (t := random_part(i)) is not None}
    short: dict[str, str] = {}
    # Sorted, each tail's nearest neighbours decide how long it must be.
    ordered = sorted(set(tails.values()))
    need: dict[str, int] = {}
    for before, after in itertools.pairwise(ordered):
        common = _common_length(before, after)
        need[before] = max(need.get(before, 0), common + 1)
        need[after] = max(need.get(after, 0), common + 1)
    for identifier in ids:
        tail = tails.get(identifier)
        if tail is None:
            short[identifier] = identifier if len(identifier) <= MAX_LENGTH else identifier[: MAX_LENGTH - 1] + "…"
        else:
            short[identifier] = tail[: min(MAX_LENGTH, max(minimum, need.get(tail, 0)))]
    return short


def _common_length(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def resolve(text: str, ids: Iterable[str]) -> str | None:
    """The one id ``text`` names: the id itself, else the only id that starts with it or whose random part
    does (case-insensitively). None if none does.

    :raises Ambiguous: if several do.
    """
    pool = ids if isinstance(ids, set | frozenset) else set(ids)
    if text in pool:
        return text
    wanted = text.strip().lower()
    if not wanted:
        return None
    matches = sorted(i for i in pool if i.lower().startswith(wanted) or (random_part(i) or "\0").startswith(wanted))
    if len(matches) > 1:
        raise Ambiguous(text, matches)
    return matches[0] if matches else None
