"""A worker process for test_concurrency.py.

Usage::

    concurrency_worker.py shared ROOT SESSION_ID TAG COUNT DURABILITY GO_FILE
    concurrency_worker.py own ROOT TAG COUNT DURABILITY GO_FILE
    concurrency_worker.py reader ROOT STOP_FILE

``shared`` persists COUNT events ``TAG:i`` onto one session, resuming again
after each refused write (``SessionConflict``, ``SessionBusy``); ``own`` does
the same on a session of its own. Both print ``ack TAG:i`` after each
acknowledged persist and a final ``done`` line with counts; they print
``ready`` and wait for GO_FILE first, so that all of them start at once. ``reader`` lists,
searches and rebuilds the index until STOP_FILE exists, checking that what it
sees only ever grows, and prints ``reads N`` and any ``bad ...`` it saw.
Writers wait ``$RELIABILITY_LOCK_TIMEOUT`` seconds (default 30) for a session's lock.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import msgspec

from sessions import (
    DamagedLogWarning,
    LocalSessionService,
    SessionBusy,
    SessionConflict,
    SessionManager,
    UserMessage,
)
from sessions.events import EventBase

AnyEvents = list[EventBase]
LOCK_TIMEOUT = float(os.environ.get("RELIABILITY_LOCK_TIMEOUT", "30"))


def resume(service: LocalSessionService, session_id: str) -> tuple[SessionManager, AnyEvents]:
    stored = service.get_session(session_id)
    assert stored is not None
    resumed = SessionManager.resume(service, stored)
    return resumed.manager, list(resumed.events)


def write(service: LocalSessionService, manager: SessionManager, events: AnyEvents, tag: str, count: int) -> None:
    conflicts = busy = 0
    i = 0
    while i < count:
        events.append(UserMessage(f"{tag}:{i}"))
        try:
            manager.persist_events(events)
        except SessionConflict:
            conflicts += 1
        except SessionBusy:
            busy += 1
        else:
            print(f"ack {tag}:{i}", flush=True)
            i += 1
            continue
        # Refused: nothing was written, so pick up the other writers' events and try again.
        manager, events = resume(service, manager.session_id)
    print(f"done {manager.session_id} conflicts={conflicts} busy={busy}", flush=True)


def read_loop(root: Path, stop: Path) -> None:
    counts: dict[str, int] = {}
    reads = torn_seen = 0
    while not stop.exists():
        service = LocalSessionService.open(root, lock_timeout=30)
        if reads % 3 == 2:
            # A reindex: throw the cache away and rebuild it from the logs.
            service.drop_index()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DamagedLogWarning)
            sessions = service.list_sessions()
            service.find_resumable("/shared", None, 3600)
            for session in sessions[:2]:
                contents = [msgspec.json.decode(e.event_data)["content"] for e in service.load_events(session.id)]
                per_tag: dict[str, int] = {}
                for content in contents:
                    tag, _, n = content.partition(":")
                    if int(n) != per_tag.get(tag, 0):
                        print(f"bad order in {session.id}: {content} after {per_tag.get(tag)}", flush=True)
                    per_tag[tag] = int(n) + 1
        torn_seen += len(caught)
        for session in sessions:
            if session.event_count < counts.get(session.id, 0):
                print(f"bad count {session.id}: {session.event_count} < {counts[session.id]}", flush=True)
            counts[session.id] = session.event_count
        reads += 1
    print(f"reads {reads} torn_seen={torn_seen}", flush=True)


def main() -> None:
    mode, root = sys.argv[1], Path(sys.argv[2])
    if mode == "reader":
        read_loop(root, Path(sys.argv[3]))
        return
    if mode == "shared":
        session_id, tag, count, durability = sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
        service = LocalSessionService.open(root, durability=durability, lock_timeout=LOCK_TIMEOUT)
        manager, events = resume(service, session_id)
    else:
        tag, count, durability = sys.argv[3], int(sys.argv[4]), sys.argv[5]
        service = LocalSessionService.open(root, durability=durability, lock_timeout=LOCK_TIMEOUT)
        manager, events = SessionManager.create_new(service, f"/own/{tag}", None), []
    print("ready", flush=True)
    go = Path(sys.argv[-1])
    while not go.exists():
        time.sleep(0.005)
    write(service, manager, events, tag, count)


if __name__ == "__main__":
    main()
