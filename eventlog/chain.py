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

A *head record* (``k = "head"``, written by a rewind) names an event (its
``parent``; none for an empty conversation) as the head. Records are taken in
log order (file order; for merged copies the merge's order, which every
machine computes alike). When a log holds head records, the last one, H, rules:
the active head is the deepest event among those that come after H and
descend from H's event through events that come after H (ties to the larger
id), or H's event itself if there are none. So events abandoned by a rewind
stay in the tree but off the active branch, appends after the rewind continue
it, and an append another machine made on the abandoned branch stays there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from eventlog.record import CHAIN_KINDS, KIND_HEAD, Record

__all__ = [
    "EventTree",
    "Head",
    "active_head",
    "build_tree",
    "chain_records",
    "head_and_count",
    "is_linear",
    "order_events",
    "path_to",
]


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
    """Branch tips (leaf ids), the active head first when it is one, then the other tips."""
    duplicates: list[Record] = field(default_factory=list)
    gaps: list[Record] = field(default_factory=list)
    """Events whose stated parent is not an earlier event."""
    rewound: bool = False
    """A head record chose the head (which then need not be a tip)."""
    chosen: str | None = None
    """The head a rewind chose (None: the empty conversation); see :attr:`active_head`."""

    @property
    def active_head(self) -> str | None:
        if self.rewound:
            return self.chosen
        return self.heads[0] if self.heads else None

    @property
    def forked(self) -> bool:
        return len(self.heads) > 1

    def branch(self, head: str | None = None) -> list[Record]:
        """The events from the root to ``head`` (the active head by default)."""
        by_id = {record.id: record for record in self.events}
        return [by_id[event_id] for event_id in path_to(self.parent_of, head if head is not None else self.active_head)]


def chain_records(records: Sequence[Record]) -> list[Record]:
    """The records that decide the chain: events, and the head records of rewinds."""
    return [record for record in records if record.k in CHAIN_KINDS]


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
    """True when each event's parent is the one before it (the common case), and no rewind chose a head."""
    previous: str | None = None
    for record in events:
        if record.k == KIND_HEAD or record.parent != previous:
            return False
        previous = record.id
    return True


def build_tree(events: Sequence[Record]) -> EventTree:
    """Arrange events (and the head records among them) by their parent links (see the module rules)."""
    unique: list[Record] = []
    rewind: tuple[Record, int] | None = None  # the last head record, and how many events came before it
    duplicates: list[Record] = []
    gaps: list[Record] = []
    parent_of: dict[str, str | None] = {}
    depth: dict[str, int] = {}
    has_child: set[str] = set()
    previous: str | None = None
    for record in events:
        if record.k == KIND_HEAD:
            rewind = (record, len(unique))
            continue
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
    tree = EventTree(unique, parent_of, depth, leaves, duplicates, gaps)
    # A head record naming an event the log does not hold (damaged, hand-edited) is not followed.
    if rewind is not None and (rewind[0].parent is None or rewind[0].parent in parent_of):
        tree.rewound = True
        tree.chosen = _head_after_rewind(rewind[0].parent, unique[rewind[1] :], parent_of, depth)
        if tree.chosen in leaves:
            leaves.remove(tree.chosen)
            leaves.insert(0, tree.chosen)
    return tree


def _head_after_rewind(
    target: str | None, later: Sequence[Record], parent_of: Mapping[str, str | None], depth: Mapping[str, int]
) -> str | None:
    """The deepest event descending from ``target`` through events that came after the rewind."""
    reached: set[str | None] = {target}
    best = target
    for record in later:  # file order: a parent comes before its children
        if parent_of[record.id] in reached:
            reached.add(record.id)
            if best is None or (depth[record.id], record.id) > (depth[best], best):
                best = record.id
    return best


def active_head(events: Sequence[Record]) -> Head | None:
    """The active head of ``events`` (head records included), or None if there is none."""
    if not events:
        return None
    if is_linear(events):
        return Head(events[-1], len(events), len(events))
    tree = build_tree(events)
    head_id = tree.active_head
    if head_id is None:
        return None
    by_id = {record.id: record for record in tree.events}
    return Head(by_id[head_id], tree.depth[head_id], len(tree.events))


def head_and_count(events: Sequence[Record]) -> tuple[Record | None, int]:
    """The active head's record (None: no events, or a rewind to the start) and how many unique events there are.

    The count is every event kept, on every branch: a rewind leaves them in the log.
    """
    if not events:
        return None, 0
    if is_linear(events):
        return events[-1], len(events)
    tree = build_tree(events)
    by_id = {record.id: record for record in tree.events}
    return (by_id[tree.active_head] if tree.active_head is not None else None), len(tree.events)


def order_events(events: Sequence[Record]) -> list[Record]:
    """The active branch of ``events`` (head records included), root first."""
    if is_linear(events):
        return list(events)
    tree = build_tree(events)
    return tree.branch() if tree.active_head is not None else []
