"""A tiny in-memory SessionService: the model the property tests compare the store against.

It states the reference's semantics as plainly as possible, with none of the
file machinery, so a disagreement points at the store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import EllipsisType

import msgspec

from eventlog import new_id, utcnow
from sessions import (
    SessionConflict,
    SessionExists,
    SessionNotFound,
    StoredEvent,
    StoredSession,
    TrashedSession,
    VerifyReport,
)
from sessions.protocol import check_session_id, cut_window


@dataclass
class _Session:
    id: str
    directory: str | None
    git_root: str | None
    created_at: dt.datetime
    events: list[StoredEvent] = field(default_factory=list)
    server_session_id: str | None = None
    archived_at: dt.datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    forked_from: str | None = None
    fork_event_id: str | None = None
    deleted_at: dt.datetime | None = None


class InMemorySessionService:
    """Implements :class:`sessions.SessionService` with plain dicts."""

    def __init__(self) -> None:
        self.sessions: dict[str, _Session] = {}
        self.trash: list[_Session] = []

    def _get(self, session_id: str) -> _Session:
        try:
            return self.sessions[check_session_id(session_id)]
        except KeyError:
            raise SessionNotFound(f"no session {session_id}") from None

    def _stored(self, s: _Session) -> StoredSession:
        updated = max([s.created_at] + [e.created_at for e in s.events[-1:]])
        return StoredSession(
            id=s.id,
            directory=s.directory,
            git_root=s.git_root,
            server_session_id=s.server_session_id,
            created_at=s.created_at,
            updated_at=updated,
            archived_at=s.archived_at,
            head_id=s.events[-1].id if s.events else None,
            event_count=len(s.events),
            forked_from=s.forked_from,
            fork_event_id=s.fork_event_id,
        )

    def create_session(self, session_id: str, directory: str | None, git_root: str | None) -> StoredSession:
        folded = check_session_id(session_id).lower()
        if any(other.lower() == folded for other in self.sessions):
            raise SessionExists(session_id)
        self.sessions[session_id] = _Session(session_id, directory, git_root, utcnow())
        return self._stored(self.sessions[session_id])

    def get_session(self, session_id: str) -> StoredSession | None:
        try:
            return self._stored(self._get(session_id))
        except SessionNotFound:
            return None

    def find_resumable(self, directory: str | None, git_root: str | None, max_age_secs: float) -> StoredSession | None:
        cutoff = utcnow() - dt.timedelta(seconds=max_age_secs)
        matches = [
            self._stored(s)
            for s in self.sessions.values()
            if (
                (directory is not None and s.directory == directory)
                or (git_root is not None and s.git_root == git_root)
            )
            and s.archived_at is None
        ]
        matches = [m for m in matches if m.updated_at > cutoff]
        return max(matches, key=lambda m: (m.updated_at, m.id), default=None)

    def list_sessions(self, *, include_archived: bool = False) -> list[StoredSession]:
        stored = [self._stored(s) for s in self.sessions.values() if include_archived or s.archived_at is None]
        return sorted(stored, key=lambda m: (m.updated_at, m.id), reverse=True)

    def load_events(
        self, session_id: str, *, last: int | None = None, from_compaction: bool = False
    ) -> list[StoredEvent]:
        return cut_window(self._get(session_id).events, last, from_compaction, lambda e: e.event_type)

    def append_event(
        self,
        session_id: str,
        event_id: str,
        parent_id: str | None,
        invocation_id: str,
        event_type: str,
        event_data: str,
    ) -> None:
        event = StoredEvent(
            id=event_id,
            session_id=session_id,
            parent_id=parent_id,
            invocation_id=invocation_id,
            event_type=event_type,
            event_data=event_data,
            created_at=utcnow(),
        )
        self.append_events(session_id, [event])

    def append_events(self, session_id: str, events: Sequence[StoredEvent]) -> None:
        session = self._get(session_id)
        head = session.events[-1].id if session.events else None
        for event in events:
            if event.parent_id != head:
                raise SessionConflict(f"head is {head}, not {event.parent_id}")
            msgspec.json.decode(event.event_data)
            head = event.id
        session.events.extend(events)

    def update_server_session_id(self, session_id: str, server_session_id: str) -> None:
        self._get(session_id).server_session_id = server_session_id

    def archive(self, session_id: str) -> None:
        self._get(session_id).archived_at = utcnow()

    def unarchive(self, session_id: str) -> None:
        self._get(session_id).archived_at = None

    def get_metadata(self, session_id: str, key: str) -> str | None:
        return self._get(session_id).metadata.get(key)

    def set_metadata(self, session_id: str, key: str, value: str) -> None:
        self._get(session_id).metadata[key] = value

    def verify(self, session_id: str) -> VerifyReport:
        session = self._get(session_id)
        return VerifyReport(
            session_id=session_id,
            path="<memory>",
            size=0,
            events=len(session.events),
            heads=[session.events[-1].id] if session.events else [],
            findings=[],
            unknown_types={},
        )

    def fork_session(self, session_id: str, at_event_id: str | None = None) -> StoredSession:
        source = self._get(session_id)
        ids = [e.id for e in source.events]
        if at_event_id is not None and at_event_id not in ids:
            raise SessionNotFound(f"no event {at_event_id} in session {session_id}")
        end = ids.index(at_event_id) + 1 if at_event_id is not None else len(ids)
        fork = _Session(new_id(), source.directory, source.git_root, utcnow())
        fork.events = [msgspec.structs.replace(e, session_id=fork.id) for e in source.events[:end]]
        fork.forked_from, fork.fork_event_id = session_id, ids[end - 1] if end else None
        self.sessions[fork.id] = fork
        return self._stored(fork)

    def rewind(
        self, session_id: str, to_event_id: str | None, *, expected_head: str | EllipsisType | None = ...
    ) -> None:
        session = self._get(session_id)
        ids = [e.id for e in session.events]
        if to_event_id is not None and to_event_id not in ids:
            raise SessionNotFound(f"no event {to_event_id} in session {session_id}")
        if expected_head is not ... and expected_head != (ids[-1] if ids else None):
            raise SessionConflict(f"session {session_id}: the head moved")
        del session.events[ids.index(to_event_id) + 1 if to_event_id is not None else 0 :]

    def delete_session(self, session_id: str) -> None:
        session = self.sessions.pop(self._get(session_id).id)
        session.deleted_at = utcnow()
        self.trash.append(session)

    def restore_session(self, session_id: str) -> None:
        deleted = [s for s in self.trash if s.id == check_session_id(session_id)]
        if not deleted:
            raise SessionNotFound(f"no deleted session {session_id}")
        if session_id in self.sessions:
            raise SessionExists(session_id)
        self.trash.remove(deleted[-1])
        self.sessions[session_id] = deleted[-1]

    def list_trash(self) -> list[TrashedSession]:
        return [
            TrashedSession(id=s.id, deleted_at=s.deleted_at or s.created_at, size=0, path="<memory>")
            for s in reversed(self.trash)
        ]

    def purge_trash(self, older_than_secs: float) -> int:
        cutoff = utcnow() - dt.timedelta(seconds=older_than_secs)
        kept = [s for s in self.trash if s.deleted_at is not None and s.deleted_at >= cutoff]
        purged, self.trash = len(self.trash) - len(kept), kept
        return purged
