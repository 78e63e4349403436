"""Short ids for people: the shortest unique start of an id's random part.

A UUIDv7 begins with a millisecond timestamp, so sessions made close together
share their first eight or more characters (3,000 sessions made in 12 s all
began ``01a22a80``). The last group of the id (12 hex digits) is random, so its
first few characters tell sessions apart: the short id of
``019a93b9-f380-7600-98ff-940e6b99603c`` is ``940e6b`` unless another id's last
group also starts that way, in which case it is lengthened, as git lengthens an
abbreviation only when it must, to at most 12 characters.

An id that is not a UUID (an application may choose its own) is its own short
id, whole: two sub-agent sessions ``<uuid>.agent-x`` and ``<uuid>.agent-y`` differ
only at their end. :func:`display_ids` gives what a narrow column shows, a unique
prefix cut with ``…`` where one fits. :func:`resolve` accepts a short id, a whole
id, any unique prefix of one, and such a cell as shown.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable
from typing import Final

__all__ = ["ELLIPSIS", "MAX_LENGTH", "MIN_LENGTH", "Ambiguous", "display_ids", "random_part", "resolve", "short_ids"]

MIN_LENGTH: Final = 6
"""Fewer would start to collide in a store of a few hundred sessions, and a short id should keep working."""
MAX_LENGTH: Final = 12
ELLIPSIS: Final = "…"
"""What ends a cell of :func:`display_ids` that is a cut id; :func:`resolve` takes the cell with it."""
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
    no other id's random part shares; an id that is not a UUID stands for itself, whole."""
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
            short[identifier] = identifier
        else:
            short[identifier] = tail[: min(MAX_LENGTH, max(minimum, need.get(tail, 0)))]
    return short


def display_ids(ids: Iterable[str], width: int = MAX_LENGTH) -> dict[str, str]:
    """What a column ``width`` wide shows for each id: its short id if it fits; else a prefix of the id long
    enough to name it alone, cut with ``…``; else its start and its end around ``…`` (``4d5611…a2898e3`` for two
    sub-agents of one session, whose ids differ only at their end); else the whole id.

    Every cell resolves (:func:`resolve`) to its id among ``ids``, as shown, ``…`` and all.
    """
    pool = list(dict.fromkeys(ids))
    short = short_ids(pool)
    lowered = sorted(i.lower() for i in pool)
    tails = sorted(t for i in pool if (t := random_part(i)) is not None)
    cells: dict[str, str] = {}
    for identifier in pool:
        text = short[identifier]
        if len(text) > width:
            keep = max(width - len(ELLIPSIS), _unique_prefix_length(identifier.lower(), lowered, tails))
            if keep < len(identifier) - len(ELLIPSIS):
                text = identifier[:keep] + ELLIPSIS
            if len(text) > width:
                text = _ends(identifier, lowered, width) or identifier
        cells[identifier] = text
    return cells


def _ends(identifier: str, lowered: list[str], width: int) -> str | None:
    """``start…end`` of the id, ``width`` long, that no other id starts and ends as; None if there is none."""
    room = width - len(ELLIPSIS)
    for end in range(1, room - 3):  # at least four characters of the start, as many as fit
        start = room - end
        head, tail = identifier[:start].lower(), identifier[-end:].lower()
        if start + end >= len(identifier):
            return None
        at = bisect.bisect_left(lowered, head)
        same = 0
        while at < len(lowered) and lowered[at].startswith(head):
            same += _starts_and_ends(lowered[at], head, tail)
            at += 1
        if same == 1:
            return identifier[:start] + ELLIPSIS + identifier[-end:]
    return None


def _starts_and_ends(identifier: str, head: str, tail: str) -> bool:
    return len(identifier) >= len(head) + len(tail) and identifier.startswith(head) and identifier.endswith(tail)


def _unique_prefix_length(lowered_id: str, lowered: list[str], tails: list[str]) -> int:
    """How many characters of an id (in lower case) no other id, nor any id's random part, starts with."""
    at = bisect.bisect_left(lowered, lowered_id)
    need = 1
    for neighbour in (at - 1, at + 1):
        if 0 <= neighbour < len(lowered):
            need = max(need, _common_length(lowered_id, lowered[neighbour]) + 1)
    while need <= len(lowered_id) and _starts_one(tails, lowered_id[:need]):
        need += 1  # a short id (a random part) starting the same way would make the prefix ambiguous
    return need


def _starts_one(ordered: list[str], prefix: str) -> bool:
    at = bisect.bisect_left(ordered, prefix)
    return at < len(ordered) and ordered[at].startswith(prefix)


def _common_length(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def resolve(text: str, ids: Iterable[str]) -> str | None:
    """The one id ``text`` names: the id itself, else the only id that starts with it or whose random part
    does (case-insensitively), or that starts and ends as a cell of :func:`display_ids` shows it (``abc…`` or
    ``abc…xyz``). None if none does.

    :raises Ambiguous: if several do.
    """
    pool = ids if isinstance(ids, set | frozenset) else set(ids)
    if text in pool:
        return text
    wanted = text.strip().removesuffix(ELLIPSIS).lower()
    if not wanted:
        return None
    if ELLIPSIS in wanted:  # a cell of display_ids: the start and the end of one id
        head, _, tail = wanted.partition(ELLIPSIS)
        matches = sorted(i for i in pool if _starts_and_ends(i.lower(), head, tail))
    else:
        matches = sorted(i for i in pool if i.lower().startswith(wanted) or (random_part(i) or "\0").startswith(wanted))
    if len(matches) > 1:
        raise Ambiguous(text, matches)
    return matches[0] if matches else None
