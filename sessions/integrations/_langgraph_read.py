"""Reading a thread's log for the LangGraph saver: newest first, from the end of the file, as far as needed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final, NamedTuple

from sessions.errors import SessionNotFound
from sessions.integrations._langgraph_events import (
    DECODE_CHECKPOINT_HEAD,
    DECODE_WRITES,
    DECODE_WRITES_HEAD,
    CheckpointHead,
    CheckpointSaved,
    WriteSaved,
    WritesSaved,
)
from sessions.models import StoredEvent
from sessions.store import LocalSessionService

__all__ = ["Found", "newest_checkpoints", "newest_first", "pending_writes"]

FIRST_WINDOW: Final = 16
"""Events read from the end first: the latest checkpoint, its writes and the checkpoint before it, usually."""


def newest_first(service: LocalSessionService, session_id: str) -> Iterator[StoredEvent]:
    """A session's events, newest first, read backward from the end in windows growing fourfold.

    Stopping early reads only the windows needed: the latest checkpoint costs one small read.
    A missing session has no events.
    """
    window = FIRST_WINDOW
    oldest: str | None = None  # the oldest event handed out so far
    while True:
        try:
            events = service.load_events(session_id, last=window)
        except SessionNotFound:
            return
        complete = len(events) < window
        cut = len(events) if oldest is None else _position(events, oldest)
        if cut is None:
            # More was appended since the last window than this one reaches: take the whole log once.
            try:
                events = service.load_events(session_id)
            except SessionNotFound:
                return
            complete = True
            cut = _position(events, oldest)
            if cut is None:  # the log was replaced (a prune): what was handed out is all there is
                return
        yield from reversed(events[:cut])
        if complete or not events:
            return
        oldest = events[0].id
        window *= 4


def _position(events: list[StoredEvent], event_id: str | None) -> int | None:
    for n in range(len(events) - 1, -1, -1):
        if events[n].id == event_id:
            return n
    return None


class Found(NamedTuple):
    """A checkpoint event with the data of the writes events naming it (newest first)."""

    event: StoredEvent
    head: CheckpointHead
    writes: list[str]


def newest_checkpoints(events: Iterable[StoredEvent], ns: str | None) -> Iterator[Found]:
    """The checkpoints of namespace ``ns`` (every namespace if None), newest first, each with its writes.

    :param events: a thread's events, newest first (:func:`newest_first`).

    A checkpoint is keyed by ``(ns, checkpoint_id)``, as in LangGraph's own savers: one put again
    under the same id is handed out once, as its newest copy, with the writes of every copy.
    Within a namespace checkpoints come in ``checkpoint_id`` order, largest first. LangGraph
    puts a task's writes in the background, so they may reach the log just before their
    checkpoint does: a checkpoint is handed out once the scan has passed a checkpoint of its
    namespace with a smaller id (or the log's start), with every writes event naming it seen by
    then. A log whose ids grow as it goes (LangGraph's ids grow with time; ``copy_thread``
    merges by id) so hands out each checkpoint when the scan reaches the one before it, as
    far back as it needs to go and no further; only before the first copy of a checkpoint put
    again does the scan pass its later copies first.
    """
    writes: dict[tuple[str, str], list[str]] = {}
    waiting: dict[str, dict[str, tuple[StoredEvent, CheckpointHead]]] = {}
    """Namespace -> checkpoint id -> its newest copy, not handed out yet."""
    handed: set[tuple[str, str]] = set()

    def hand_out(event: StoredEvent, head: CheckpointHead) -> Found:
        key = (head.ns, head.checkpoint_id)
        handed.add(key)
        return Found(event, head, writes.pop(key, []))

    for event in events:
        if event.event_type == WritesSaved.TYPE:
            mark = DECODE_WRITES_HEAD(event.event_data)
            key = (mark.ns, mark.checkpoint_id)
            if (ns is None or mark.ns == ns) and key not in handed:
                writes.setdefault(key, []).append(event.event_data)
        elif event.event_type == CheckpointSaved.TYPE:
            head = DECODE_CHECKPOINT_HEAD(event.event_data)
            if ns is not None and head.ns != ns:
                continue
            held = waiting.setdefault(head.ns, {})
            if head.checkpoint_id in held or (head.ns, head.checkpoint_id) in handed:
                continue  # an older copy of a checkpoint put again: the newer one stands
            for newer in sorted((cid for cid in held if cid > head.checkpoint_id), reverse=True):
                yield hand_out(*held.pop(newer))
            held[head.checkpoint_id] = (event, head)
    for held in waiting.values():
        for checkpoint_id in sorted(held, reverse=True):
            yield hand_out(*held[checkpoint_id])


def pending_writes(writes_data: list[str]) -> list[tuple[str, str, int, WriteSaved]]:
    """The writes of one checkpoint as ``(task_path, task_id, idx, write)``, in LangGraph's order.

    :param writes_data: the writes events' data, newest first.

    A task's write at a given index is kept once (the first stored), as
    LangGraph's own savers do; a special channel's (negative index: error,
    interrupt...) is replaced by a later one.
    """
    kept: dict[tuple[str, int], tuple[str, str, int, WriteSaved]] = {}
    for data in reversed(writes_data):
        event = DECODE_WRITES(data)
        for write in event.writes:
            key = (event.task_id, write.idx)
            if write.idx >= 0 and key in kept:
                continue
            kept[key] = (event.task_path, event.task_id, write.idx, write)
    return sorted(kept.values(), key=lambda w: (w[0], w[1], w[2]))
