"""Which events of a thread's log survive a prune, a ``delete_for_runs`` or a copy (pure selections, no I/O)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sessions.integrations._langgraph_events import (
    DECODE_CHECKPOINT_HEAD,
    DECODE_WRITES_HEAD,
    CheckpointSaved,
    WritesSaved,
)
from sessions.models import StoredEvent

__all__ = ["by_checkpoint_id", "copyable", "keep_latest", "newer_than_held", "without_runs"]


def _checkpoint_key(event: StoredEvent) -> tuple[str, str] | None:
    """``(ns, checkpoint_id)`` of a checkpoint or writes event; None for any other event."""
    return _key(event.event_type, event.event_data)


def _key(event_type: str, data: str) -> tuple[str, str] | None:
    if event_type == CheckpointSaved.TYPE:
        head = DECODE_CHECKPOINT_HEAD(data)
        return head.ns, head.checkpoint_id
    if event_type == WritesSaved.TYPE:
        mark = DECODE_WRITES_HEAD(data)
        return mark.ns, mark.checkpoint_id
    return None


def _dropping(events: Sequence[StoredEvent], dropped: set[tuple[str, str]]) -> list[StoredEvent] | None:
    """The events without the checkpoints ``dropped`` and their writes; None if that changes nothing."""
    if not dropped:
        return None
    return [event for event in events if _checkpoint_key(event) not in dropped]


def keep_latest(events: Sequence[StoredEvent]) -> list[StoredEvent] | None:
    """The events without every checkpoint but the latest (largest ``checkpoint_id``) of each namespace.

    The latest is the one ``get_tuple`` returns, as in LangGraph's own savers; the writes of the
    checkpoints dropped go with them, and events of other types stay. None if there is nothing to drop.
    """
    latest: dict[str, str] = {}
    every: set[tuple[str, str]] = set()
    for event in events:
        if event.event_type == CheckpointSaved.TYPE:
            head = DECODE_CHECKPOINT_HEAD(event.event_data)
            latest[head.ns] = max(latest.get(head.ns, head.checkpoint_id), head.checkpoint_id)
            every.add((head.ns, head.checkpoint_id))
    return _dropping(events, every - set(latest.items()))


def without_runs(events: Sequence[StoredEvent], run_ids: Collection[str]) -> list[StoredEvent] | None:
    """The events without the checkpoints whose metadata ``run_id`` is in ``run_ids`` (and their writes).

    None if none of them is there.
    """
    dropped = set()
    for event in events:
        # A cheap test first: most logs do not hold the run ids at all.
        if event.event_type == CheckpointSaved.TYPE and any(run in event.event_data for run in run_ids):
            head = DECODE_CHECKPOINT_HEAD(event.event_data)
            if head.metadata.get("run_id") in run_ids:
                dropped.add((head.ns, head.checkpoint_id))
    return _dropping(events, dropped)


def copyable(source: Sequence[StoredEvent], target: Sequence[StoredEvent]) -> list[tuple[str, str]]:
    """``(event_type, data)`` of the source's checkpoints and writes that the target does not already hold."""
    held = {key for event in target if event.event_type == CheckpointSaved.TYPE and (key := _checkpoint_key(event))}
    copied = []
    for event in source:
        key = _checkpoint_key(event)
        if key is not None and key not in held:
            copied.append((event.event_type, event.event_data))
    return copied


def newer_than_held(target: Sequence[StoredEvent], copied: Sequence[tuple[str, str]]) -> bool:
    """Whether ``copied`` appended after ``target`` leaves the log in ``checkpoint_id`` order.

    That is the order :func:`by_checkpoint_id` would give them, for ids that grow as the log goes.
    """
    newest = max((key[1] for event in target if (key := _checkpoint_key(event))), default="")
    ids = [key[1] for event_type, data in copied if (key := _key(event_type, data))]
    return all(newest <= checkpoint_id for checkpoint_id in ids) and ids == sorted(ids)


def by_checkpoint_id(events: Sequence[StoredEvent]) -> list[StoredEvent]:
    """The events in ``checkpoint_id`` order, each checkpoint followed by its writes, as a log is read.

    The sort is stable: the writes of one checkpoint keep their order (the first stored of a task's
    index is kept), and so do events of the same checkpoint in two namespaces. An event of another
    type stays after the saver's event it followed.
    """
    order: list[tuple[str, int, int]] = []
    last = ("", 0)
    for n, event in enumerate(events):
        key = _checkpoint_key(event)
        if key is not None:
            last = (key[1], 0 if event.event_type == CheckpointSaved.TYPE else 1)
        order.append((*last, n))
    return [events[n] for *_, n in sorted(order)]
