"""The ``eventsourcing`` library's SQLite recorder, one aggregate sequence per session.

Events are stored as the library stores them (originator id, version, topic,
state) with its ``JSONTranscoder`` for the state; a turn is one
``insert_events`` call (one transaction). The recorder reads by originator id
only, so finding or listing sessions by directory would need a projection the
library leaves to the application: those workloads are not offered.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from benchmarks.peers.base import Persist, SessionSpec, Store
from sessions import ConversationEvent, UnknownEvent
from sessions.events import EVENT_TYPES

__all__ = ["EventsourcingPeer", "available"]

try:
    from eventsourcing.persistence import JSONTranscoder, StoredEvent
    from eventsourcing.sqlite import SQLiteAggregateRecorder, SQLiteDatastore
except ImportError:  # the optional `bench` extra is not installed
    available = False
else:
    available = True

_MISSING = "eventsourcing is not installed: pip install -e '.[bench]'"
_NO_QUERY = "the eventsourcing recorder reads by originator id only; finding sessions needs a projection"


def _recorder(path: Path, durability: str) -> Any:
    datastore = SQLiteDatastore(str(path), originator_id_type="text")
    pool = datastore.pool
    create = pool._create_connection
    synchronous = "FULL" if durability == "fsync" else "NORMAL"

    def create_with_durability() -> Any:
        # The library leaves `synchronous` at SQLite's default; match our durabilities.
        connection = create()
        connection._sqlite_conn.execute(f"PRAGMA synchronous={synchronous}")
        return connection

    setattr(pool, "_create_connection", create_with_durability)  # noqa: B010 - a private hook, no public one
    recorder = SQLiteAggregateRecorder(datastore)
    recorder.create_table()
    return recorder


class EventsourcingPeer:
    name = "eventsourcing"
    description = "eventsourcing 9 SQLiteAggregateRecorder + JSONTranscoder, one transaction per turn"

    def __init__(self) -> None:
        self.transcoder = JSONTranscoder() if available else None

    def _stored(self, session_id: str, version: int, event: ConversationEvent) -> Any:
        assert self.transcoder is not None
        state = self.transcoder.encode(msgspec.to_builtins(event))
        return StoredEvent(originator_id=session_id, originator_version=version, topic=event.TYPE, state=state)

    def persister(self, root: Path, durability: str) -> Persist:
        if not available:
            raise NotImplementedError(_MISSING)
        recorder = _recorder(root / "events.db", durability)
        version = 0

        def prepare(turn: list[ConversationEvent]) -> Callable[[], None]:
            nonlocal version
            batch = [self._stored("session", version + i + 1, e) for i, e in enumerate(turn)]
            version += len(turn)
            return lambda: recorder.insert_events(batch)

        return prepare

    def resumer(self, root: Path, events: list[ConversationEvent]) -> Callable[[], list[Any]]:
        if not available:
            raise NotImplementedError(_MISSING)
        recorder = _recorder(root / "events.db", "flush")
        for start in range(0, len(events), 1000):
            chunk = events[start : start + 1000]
            recorder.insert_events([self._stored("session", start + i + 1, e) for i, e in enumerate(chunk)])
        transcoder = self.transcoder
        assert transcoder is not None

        def resume() -> list[Any]:
            out: list[Any] = []
            for stored in recorder.select_events("session"):
                cls = EVENT_TYPES.get(stored.topic)
                data = transcoder.decode(stored.state)
                out.append(msgspec.convert(data, cls) if cls is not None else UnknownEvent(stored.topic, str(data)))
            return out

        return resume

    def populate(self, root: Path, specs: list[SessionSpec]) -> None:
        raise NotImplementedError(_NO_QUERY)

    def open_store(self, root: Path) -> Store:
        raise NotImplementedError(_NO_QUERY)
