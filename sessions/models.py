"""The records the service hands out: sessions, stored events, verify reports."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from eventlog import Finding

__all__ = ["SessionBatch", "StoredEvent", "StoredSession", "TrashedSession", "VerifyReport"]


class StoredSession(msgspec.Struct, frozen=True, kw_only=True):
    """A session as the index knows it. Timestamps are timezone-aware UTC."""

    id: str
    directory: str | None
    git_root: str | None
    server_session_id: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    """The time of the last event, or of creation if there is none."""
    archived_at: dt.datetime | None
    head_id: str | None
    event_count: int = 0
    forked_from: str | None = None
    """For a fork: the session it was forked from (see ``fork_session``)."""
    fork_event_id: str | None = None
    """For a fork: the event of ``forked_from`` it continues from."""
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    """Labels set when the session was created (``list_sessions(labels=...)`` filters on them)."""


class TrashedSession(msgspec.Struct, frozen=True, kw_only=True):
    """A deleted session's log, kept in the trash until :meth:`purge_trash` removes it."""

    id: str
    deleted_at: dt.datetime
    size: int
    path: str


class StoredEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One event as stored: ``event_data`` is the payload as JSON text."""

    id: str
    session_id: str
    parent_id: str | None
    invocation_id: str
    event_type: str
    event_data: str
    created_at: dt.datetime


class VerifyReport(msgspec.Struct, kw_only=True):
    """What ``verify`` found in one session log.

    ``ok`` is False when a line is damaged or the tail is torn. Forks,
    duplicates, gaps and unknown event types (a newer version wrote them) are
    reported as findings but are not damage.
    """

    session_id: str
    path: str
    size: int
    events: int
    heads: list[str]
    findings: list[Finding]
    unknown_types: dict[str, int]

    @property
    def forked(self) -> bool:
        return len(self.heads) > 1

    @property
    def damaged(self) -> list[Finding]:
        return [f for f in self.findings if f.kind in ("damaged", "torn_tail")]

    @property
    def ok(self) -> bool:
        """No damaged line and no torn tail (forks, duplicates and gaps are reported, not damage)."""
        return not self.damaged


class SessionBatch(msgspec.Struct, kw_only=True):
    """A turn's writes, to go out as one write and one sync (see ``SessionManager.batch``).

    :param create: ``(directory, git_root)`` when the session does not exist yet: its header goes in the same write.
    :param labels: the new session's labels (with ``create``).
    :param metadata: values by key, each any JSON value.
    """

    create: tuple[str | None, str | None] | None = None
    events: list[StoredEvent] = msgspec.field(default_factory=list)
    server_session_id: str | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    labels: dict[str, str] = msgspec.field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.create is not None or self.events or self.server_session_id is not None or self.metadata)
