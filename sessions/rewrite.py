"""Replacing a session's events in one step, the old log kept in the trash.

For what an append cannot do: an adapter pruning old checkpoints, or dropping
a run's events (LangGraph's ``prune`` and ``delete_for_runs``). Under the
session's lock the new log (the old header and facts, the given events) is
written beside the old one and renamed over it: a reader sees the old log or
the new, never neither, and a writer waiting for the lock appends to the new
one (or gets ``SessionConflict`` if the head it knew is gone). The old log is
saved whole to ``trash/`` first, so nothing is lost.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING

from eventlog import KIND_EVENT, KIND_HEAD, KIND_HEADER, Record, atomic_write, build_tree, encode_records, new_id
from eventlog.reader import decode_each, read_bytes, split_torn
from eventlog.trash import save_to_trash
from sessions.errors import SessionNotFound, SessionWriteError, translate_log_errors
from sessions.models import StoredSession

if TYPE_CHECKING:
    from sessions.store import LocalSessionService

__all__ = ["REPLACED", "replace_events", "tree_records"]

REPLACED = "replaced"
"""The folder of ``trash/`` that keeps the logs :func:`replace_events` replaced."""
REPLACED_WHERE = f"trash/{REPLACED}/"


def tree_records(records: list[Record], head_id: str | None, ts: dt.datetime) -> list[Record]:
    """Check that event ``records`` form a tree in list order, and add a head record if ``head_id`` needs one.

    :raises ValueError: if a parent is not an earlier event, or ``head_id`` is not one of them.
    """
    seen: set[str] = set()
    for record in records:
        if record.id in seen:
            raise ValueError(f"event {record.id} is in the list twice; each event needs its own id")
        if record.parent is not None and record.parent not in seen:
            raise ValueError(f"event {record.id}: its parent {record.parent} is not an earlier event of the list")
        seen.add(record.id)
    if head_id is None:
        return records
    if head_id not in seen:
        raise ValueError(f"head_id {head_id} is not one of the events given")
    if build_tree(records).active_head == head_id:
        return records
    return [*records, Record(k=KIND_HEAD, id=new_id(), ts=ts, parent=head_id)]


def _kept(path: Path, before: int) -> str:
    try:
        same = os.stat(path, follow_symlinks=False).st_ino == before
    except OSError:
        same = False
    if same:
        return "the log is unchanged"
    return f"the log may hold the new events; the old log is kept whole in {REPLACED_WHERE}"


def replace_events(
    service: LocalSessionService, session_id: str, records: list[Record], head_id: str | None
) -> StoredSession:
    """See :meth:`LocalSessionService.replace_events`; ``records`` are the new events' log records."""
    path = service.log_path(session_id)
    durable = service.durability == "fsync"
    with service.session_lock(session_id):
        try:
            data = translate_log_errors(lambda: read_bytes(path), session_id)
        except FileNotFoundError:
            raise SessionNotFound(f"no session {session_id} in {service.root}") from None
        # The bytes read once serve twice: parsed here, and kept whole in the trash below.
        old = decode_each(split_torn(data, 0)[0], 0)[0]
        header = next((r for r in old if r.k == KIND_HEADER), None)
        if header is None:
            raise SessionNotFound(f"session {session_id}: its log has no header line; run `sessions doctor`")
        kept = [r for r in old if r.k not in (KIND_HEADER, KIND_EVENT, KIND_HEAD)]
        new = encode_records([header, *tree_records(records, head_id, dt.datetime.now(dt.UTC)), *kept])
        before = os.stat(path, follow_symlinks=False).st_ino
        try:
            save_to_trash(service.trash_dir / REPLACED, path.name, data, durable=durable)
            atomic_write(path, new, durable=durable)
        except OSError as exc:
            # The copy in the trash stays unless the log is surely the old one still: a failure after the
            # rename (syncing the folder) leaves the new log in place, and the old events only in the trash.
            raise SessionWriteError(
                exc.errno, f"session {session_id}: replacing its events failed ({exc}); {_kept(path, before)}"
            ) from exc
    stored = service.get_session(session_id)
    assert stored is not None  # written under our lock just now
    return stored
