"""One operation in a fresh process: ``python -m benchmarks.fresh '{"op": ..., ...}'``.

Prints one JSON line: ``{"parts": {name: seconds}, "rss_bytes": int | null, "rss_close_bytes": int | null}``.
Imports and the preparation of the data to write are not timed (they are the
same whichever store is asked), and the OS page cache is whatever earlier runs
left: "fresh" means a process with no state of its own, as an agent or the
``sessions`` command starting. ``rss_bytes`` is the peak resident set size
from opening the store to the answer (before ``close``), above the resident size
just before opening it (Linux: the peak is reset through
``/proc/self/clear_refs``), or null where it cannot be read;
``rss_close_bytes`` the same peak with ``close`` included.

Operations (every store is opened with the default durability, ``fsync``):

- ``startup`` (``peer``, ``root``, ``directory``, ``seed``): open the store,
  ``find_resumable`` for ``directory``, ``SessionManager.resume``: part
  ``load``; then one 10-event turn as an agent writes it: ``persist_events`` of
  the whole conversation, ``persist_server_session_id`` and two metadata blobs
  of a few KB (in one ``SessionManager.batch()`` where the library has it):
  part ``turn``; ``close``.
- ``append``, ``get``, ``meta``, ``archive`` (``root``, ``session_id``, ``seed``):
  open the store, then append one event after the head named by
  ``get_session``; ``get_session``; ``set_metadata`` of a few KB;
  ``archive``: part ``op``; then ``close``.
- ``create`` (``root``, ``directory``, ``seed``): open, ``create_session``
  of a new id: part ``op``; then ``close``.
- ``tail`` (``root``, ``session_id``, ``last``): open, ``load_events(session_id,
  last=last)``: part ``op`` (part ``call``: the ``load_events`` call alone); then
  ``close``. ``count`` and ``head`` (the last event's id) are printed too.
- ``resume`` (``root``, ``session_id``, ``from_compaction``): open,
  ``get_session``, ``SessionManager.resume(store, stored,
  from_compaction=...)``: part ``op`` (part ``call``: the resume alone); then
  ``close``. ``count`` and ``first`` (the first event's type) are printed too.
"""

from __future__ import annotations

import contextlib
import gc
import json
import random
import re
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from benchmarks.fixtures import uuid7
from benchmarks.peers.sqlite_ref import SQLiteSessionService
from benchmarks.workloads import metadata_blobs, turn
from sessions import LocalSessionService, SessionManager, SessionService, Text, serialize_event

OURS = "jsonl-sessions"
_STATUS = Path("/proc/self/status")


def _status_bytes(field: str) -> int | None:
    try:
        found = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(found.group(1)) * 1024 if found else None


def _reset_peak() -> int | None:
    """Reset the peak RSS to the current RSS; the current RSS (None if unknown)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return _status_bytes("VmRSS")


_peaks: list[int | None] = []


def _mark() -> None:
    """Note the peak RSS so far (outside the timed parts)."""
    _peaks.append(_status_bytes("VmHWM"))


def turn_metadata(rng: random.Random, seed: int) -> dict[str, str]:
    """The two metadata blobs an agent writes after a turn, both changed since the last turn."""
    blobs = metadata_blobs(rng)
    blobs["edit_permissions"] = blobs["edit_permissions"][:-1] + f',"turn":{seed}}}'
    return blobs


def _open(peer: str, root: str) -> LocalSessionService | SQLiteSessionService:
    if peer == OURS:
        return LocalSessionService.open(root)
    return SQLiteSessionService(Path(root) / "sessions.db", durability="fsync", per_event=True)


def _startup(spec: dict[str, Any]) -> Callable[[], dict[str, float]]:
    peer, root, directory, seed = spec["peer"], spec["root"], spec["directory"], spec["seed"]
    rng = random.Random(seed)
    new = turn(rng, 10)
    blobs = turn_metadata(rng, seed)
    server = f"srv-{seed}"

    def run() -> dict[str, float]:
        start = time.perf_counter()
        store = _open(peer, root)
        service: SessionService = store
        found = service.find_resumable(directory, directory, 3600.0)
        if found is None:
            raise RuntimeError(f"{peer}: no session to resume for {directory} in {root}")
        resumed = SessionManager.resume(service, found)
        loaded = time.perf_counter()
        _mark()
        manager = resumed.manager
        # SessionManager.batch() (one write and one fsync for the whole turn) where the library has it;
        # the SQLite reference writes as the reference application does, call by call.
        batch = getattr(manager, "batch", None) if peer == OURS else None
        scope: AbstractContextManager[object] = batch() if batch is not None else contextlib.nullcontext()
        with scope:
            # As an application holds its conversation: the resumed list, grown in place (not copied per turn).
            conversation = resumed.events
            conversation.extend(new)
            manager.persist_events(conversation)
            manager.persist_server_session_id(server)
            for key, value in blobs.items():
                manager.set_metadata(key, value)
        written = time.perf_counter()
        _mark()
        store.close()
        closed = time.perf_counter()
        return {"load": loaded - start, "turn": written - loaded, "close": closed - written}

    return run


def _one(spec: dict[str, Any]) -> Callable[[], dict[str, float]]:
    op, root, seed = spec["op"], spec["root"], spec["seed"]
    rng = random.Random(seed)
    session_id = spec.get("session_id", "")
    event_type, event_data = serialize_event(Text(f"one more answer, number {seed}"))
    new_id = uuid7(rng, time.time_ns() // 1_000_000)
    inv = uuid7(rng, time.time_ns() // 1_000_000)
    value = turn_metadata(rng, seed)["file_read_tracker"]
    directory = spec.get("directory")

    def act(store: LocalSessionService) -> None:
        if op == "append":
            stored = store.get_session(session_id)
            assert stored is not None
            store.append_event(session_id, new_id, stored.head_id, inv, event_type, event_data)
        elif op == "get":
            if store.get_session(session_id) is None:
                raise RuntimeError(f"no session {session_id} in {root}")
        elif op == "meta":
            store.set_metadata(session_id, "file_read_tracker", value)
        elif op == "archive":
            store.archive(session_id)
        elif op == "create":
            store.create_session(new_id, directory, directory)
        else:
            raise ValueError(f"unknown operation {op!r}")

    def run() -> dict[str, float]:
        start = time.perf_counter()
        store = LocalSessionService.open(root)
        act(store)
        done = time.perf_counter()
        _mark()
        store.close()
        closed = time.perf_counter()
        return {"op": done - start, "close": closed - done}

    return run


_answer: dict[str, Any] = {}
"""What a windowed read returned, for the caller to check (filled outside the timed parts)."""


def _window(spec: dict[str, Any]) -> Callable[[], dict[str, float]]:
    op, root, session_id = spec["op"], spec["root"], spec["session_id"]

    def run() -> dict[str, float]:
        start = time.perf_counter()
        store = LocalSessionService.open(root)
        if op == "tail":
            called = time.perf_counter()
            events = store.load_events(session_id, last=spec["last"])
            done = time.perf_counter()
            _mark()
            _answer.update(count=len(events), head=events[-1].id if events else None)
        else:
            stored = store.get_session(session_id)
            if stored is None:
                raise RuntimeError(f"no session {session_id} in {root}")
            called = time.perf_counter()
            resumed = SessionManager.resume(store, stored, from_compaction=spec["from_compaction"])
            done = time.perf_counter()
            _mark()
            first = resumed.events[0] if resumed.events else None
            _answer.update(count=len(resumed.events), first=type(first).__name__)
            del resumed
        closing = time.perf_counter()
        store.close()
        closed = time.perf_counter()
        return {"op": done - start, "call": done - called, "close": closed - closing}

    return run


def main(argv: list[str]) -> None:
    spec = json.loads(argv[0])
    op = spec["op"]
    run = _startup(spec) if op == "startup" else _window(spec) if op in ("tail", "resume") else _one(spec)
    gc.collect()
    before = _reset_peak()
    parts = run()
    _mark()
    rss = [peak - before if peak is not None and before is not None else None for peak in _peaks]
    out = {"parts": parts, "rss_bytes": rss[-2], "rss_close_bytes": rss[-1], **_answer}
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
