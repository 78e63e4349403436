"""Ordering events by their parent links.

A log written by one writer at a time is one straight chain: each event's
parent is the event before it. Copies merged from two machines may fork. The
rules below give every machine the same answer from the same records, without
trusting clocks:

- the first record with a given id wins; later copies are duplicates;
- an event whose parent is not an earlier event (a damaged line took it, or it
  never existed) hangs off the event just before it, and is reported as a gap;
- the *active head* is the leaf deepest in the tree, ties going to the larger id;
- the active branch runs from the root to the active head.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from eventlog.record import Record

__all__ = ["EventTree", "Head", "active_head", "build_tree", "is_linear", "order_events", "path_to"]


@dataclass(frozen=True)
class Head:
    """The active head, its depth (1 for a root) and how many unique events there are."""

    record: Record
    depth: int
    unique: int


@dataclass
class EventTree:
    """Every event of a log arranged by parent links (see the module rules)."""

    events: list[Record]
    """Unique events in file order."""
    parent_of: dict[str, str | None]
    """The effective parent of each event id."""
    depth: dict[str, int]
    heads: list[str]
    """Leaf ids, the active head first, then the other branches' tips."""
    duplicates: list[Record] = field(default_factory=list)
    gaps: list[Record] = field(default_factory=list)
    """Events whose stated parent is not an earlier event."""

    @property
    def active_head(self) -> str | None:
        return self.heads[0] if self.heads else None

    @property
    def forked(self) -> bool:
        return len(self.heads) > 1

    def branch(self, head: str | None = None) -> list[Record]:
        """The events from the root to ``head`` (the active head by default)."""
        by_id = {record.id: record for record in self.events}
        return [by_id[event_id] for event_id in path_to(self.parent_of, head if head is not None else self.active_head)]


def path_to(parent_of: Mapping[str, str | None], tip: str | None) -> list[str]:
    """The ids from the root down to ``tip``, following ``parent_of``.

    :raises KeyError: if ``tip`` (or a parent on the way) is not in ``parent_of``.
    """
    path: list[str] = []
    while tip is not None:
        path.append(tip)
        tip = parent_of[tip]
    path.reverse()
    return path


def is_linear(events: Sequence[Record]) -> bool:
    """True when each event's parent is the one before it (the common case)."""
    previous: str | None = None
    for record in events:
        if record.parent != previous:
            return False
        previous = record.id
    return True


def build_tree(events: Sequence[Record]) -> EventTree:
    """Arrange events by their parent links (see the module rules)."""
    unique: list[Record] = []
    duplicates: list[Record] = []
    gaps: list[Record] = []
    parent_of: dict[str, str | None] = {}
    depth: dict[str, int] = {}
    has_child: set[str] = set()
    previous: str | None = None
    for record in events:
        if record.id in parent_of:
            duplicates.append(record)
            continue
        parent = record.parent
        if parent is not None and parent not in parent_of:
            gaps.append(record)
            parent = previous
        parent_of[record.id] = parent
        depth[record.id] = depth[parent] + 1 if parent is not None else 1
        if parent is not None:
            has_child.add(parent)
        unique.append(record)
        previous = record.id
    leaves = [record.id for record in unique if record.id not in has_child]
    leaves.sort(key=lambda rid: (depth[rid], rid), reverse=True)
    return EventTree(unique, parent_of, depth, leaves, duplicates, gaps)


def active_head(events: Sequence[Record]) -> Head | None:
    """The active head of ``events``, or None if there are none."""
    if not events:
        return None
    if is_linear(events):
        return Head(events[-1], len(events), len(events))
    tree = build_tree(events)
    head_id = tree.active_head
    assert head_id is not None
    by_id = {record.id: record for record in tree.events}
    return Head(by_id[head_id], tree.depth[head_id], len(tree.events))


def order_events(events: Sequence[Record]) -> list[Record]:
    """The active branch of ``events``, root first."""
    if is_linear(events):
        return list(events)
    return build_tree(events).branch()
