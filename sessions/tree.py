"""A session's whole event tree: every branch, not only the active one.

A session forks when two machines (or two processes that both resumed it)
continued it differently and the copies were merged. ``load_events`` and
resume follow the active branch; :class:`SessionTree` shows all of them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from eventlog import Record, build_tree, chain_records
from eventlog.chain import path_to
from sessions._mapping import event_record, stored_event
from sessions.conflicts import read_with_copies
from sessions.errors import DamagedLogWarning
from sessions.models import StoredEvent

__all__ = ["SessionTree", "branch_records", "read_session_tree"]


@dataclass(frozen=True)
class SessionTree:
    """Every event of a session arranged by parent links (see :mod:`eventlog.chain`)."""

    session_id: str
    events: list[StoredEvent]
    """Each event once, parents before children."""
    parent_of: dict[str, str | None]
    """The parent each event hangs from (an event whose parent is missing hangs from the one before it)."""
    heads: list[str]
    """Branch tips: the active head first (deepest, ties to the larger id), then the others."""
    gaps: list[str]
    """Events whose stated parent is not in the log (a damaged line took it)."""
    active_head: str | None
    """The head the session continues from (a rewind may have chosen one that is not a tip)."""

    @property
    def forked(self) -> bool:
        return len(self.heads) > 1

    def branch(self, head: str | None = None) -> list[StoredEvent]:
        """The events from the root to ``head`` (the active head by default), oldest first.

        :raises KeyError: if ``head`` is not an event of this session.
        """
        by_id = {event.id: event for event in self.events}
        return [by_id[event_id] for event_id in path_to(self.parent_of, head if head is not None else self.active_head)]

    def branches(self) -> list[list[StoredEvent]]:
        """Every branch from the root to a tip, the active branch first."""
        return [self.branch(head) for head in self.heads]


def read_session_tree(session_id: str, log_path: Path, copies: Sequence[Path] = ()) -> SessionTree:
    """Read a session's tree from its log (merged with any conflict copies beside it).

    Damaged lines are skipped with a :class:`DamagedLogWarning`.

    :raises FileNotFoundError: if there is no log.
    :raises UnsafeLogPath: if the log is a symlink or not a regular file.
    """
    read = read_with_copies(log_path, copies)
    if read.damaged or read.torn:
        warnings.warn(
            f"{log_path}: skipped {len(read.damaged) + bool(read.torn)} damaged line(s); nothing was deleted",
            DamagedLogWarning,
            stacklevel=3,
        )
    tree = build_tree(chain_records(read.records))
    return SessionTree(
        session_id=session_id,
        events=[stored_event(session_id, r) for r in tree.events],
        parent_of=dict(tree.parent_of),
        heads=list(tree.heads),
        gaps=[r.id for r in tree.gaps],
        active_head=tree.active_head,
    )


def branch_records(tree: SessionTree, head: str | None) -> list[Record]:
    """The log records of the branch ending at ``head``, as one straight chain (what a fork starts with).

    Re-chained: a gap the reader bridged (a parent lost to a damaged line) is bridged in the copy too.
    """
    records: list[Record] = []
    parent = None
    for event in tree.branch(head) if head is not None else []:
        record = event_record(event.session_id, event)
        records.append(msgspec.structs.replace(record, parent=parent))
        parent = record.id
    return records
