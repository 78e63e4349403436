"""ADK sessions as session logs, the synchronous side: which log holds a session, its state, its events.

Everything here runs in a worker thread of :class:`~sessions.aio.AsyncLocalSessionService`;
:mod:`sessions.integrations.adk` turns it into ADK's ``BaseSessionService``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import msgspec

from eventlog import new_id
from sessions.errors import InvalidSessionId, SessionConflict, SessionExists, SessionNotFound
from sessions.events import EventBase
from sessions.models import SessionBatch, StoredEvent, StoredSession
from sessions.protocol import check_session_id
from sessions.store import LocalSessionService

__all__ = ["AdkEvent", "AdkLogs", "Read", "Stale"]

KIND: Final = "adk.kind"
APP: Final = "adk.app"
USER: Final = "adk.user"
SESSION: Final = "adk.session"
"""Labels: what a log is (``session``, ``app_state``, ``user_state``), and the ADK ids it belongs to."""
STATE: Final = "adk.state:"
"""Prefix of the metadata keys holding state, one key per state key (the scope's prefix removed)."""

_NAMESPACE: Final = uuid.UUID("3d6b0c52-8e1f-5a47-b2d9-7c4e1a9f6b08")
_FIRST_WINDOW: Final = 32


class AdkEvent(EventBase, frozen=True, kw_only=True):
    """An ADK ``Event``: the log's ``data`` is ``Event.model_dump_json(exclude_none=True)``; these are the fields
    ``sessions verify`` checks (the others are kept as they are)."""

    TYPE: ClassVar[str] = "adk_event"
    id: str
    timestamp: float
    invocation_id: str = ""
    author: str = ""


class _EventId(msgspec.Struct):
    """Only the id of a stored ADK event's JSON (the stale check of a session without a marker needs no more)."""

    id: str = ""


_decode_event_id: Final = msgspec.json.Decoder(_EventId).decode


class Stale(Exception):
    """The session given to ``append_event`` is not the stored one's latest revision."""


class Read(msgspec.Struct, frozen=True):
    """What a read of one ADK session found: its log's summary, its events' JSON and its merged state."""

    stored: StoredSession
    events: list[str]
    state: dict[str, Any]


def _uuid5(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "\x00".join(parts)))


def app_log_id(app: str) -> str:
    return _uuid5("app", app)


def user_log_id(app: str, user: str) -> str:
    return _uuid5("user", app, user)


def candidates(app: str, user: str, session_id: str) -> list[str]:
    """The log ids an ADK session may have, in order: its own id if valid, then uuid5 of (app, user, id)."""
    mapped = _uuid5("session", app, user, session_id)
    try:
        return [check_session_id(session_id), mapped]
    except InvalidSessionId:
        return [mapped]


def stamp(timestamp: float) -> dt.datetime:
    """An ADK timestamp (seconds) as the log's time (microseconds, UTC)."""
    return dt.datetime.fromtimestamp(timestamp, dt.UTC)


def split_state(state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The app, user and session parts of a state delta, prefixes removed; ``temp:`` keys dropped."""
    app, user, session = {}, {}, {}
    for key, value in state.items():
        if key.startswith("app:"):
            app[key.removeprefix("app:")] = value
        elif key.startswith("user:"):
            user[key.removeprefix("user:")] = value
        elif not key.startswith("temp:"):
            session[key] = value
    return app, user, session


def _facts(delta: Mapping[str, Any]) -> dict[str, Any]:
    return {STATE + key: value for key, value in delta.items()}


class AdkLogs:
    """The ADK sessions of one store, with the log id each one was found at."""

    def __init__(self, store: LocalSessionService) -> None:
        self.store = store
        self.invocation_id = new_id()
        self._found: dict[tuple[str, str, str], str] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, log_id: str) -> threading.Lock:
        """Appends to one session from this process take turns (other processes are kept apart by the head check)."""
        with self._guard:
            return self._locks.setdefault(log_id, threading.Lock())

    # -- finding ------------------------------------------------------------------------

    def find(self, app: str, user: str, session_id: str) -> StoredSession | None:
        """The log of an ADK session (its summary), or None."""
        key = (app, user, session_id)
        known = self._found.get(key)
        for log_id in [known] if known is not None else candidates(app, user, session_id):
            stored = self.store.get_session(log_id)
            if stored is not None and self._owns(stored, app, user, session_id):
                self._found[key] = log_id
                return stored
        self._found.pop(key, None)
        return None if known is None else self.find(app, user, session_id)

    @staticmethod
    def _owns(stored: StoredSession, app: str, user: str, session_id: str) -> bool:
        labels = stored.labels
        return (
            labels.get(KIND) == "session"
            and labels.get(APP) == app
            and labels.get(USER) == user
            and labels.get(SESSION) == session_id
        )

    def state_of(self, log_id: str) -> dict[str, Any]:
        """The state a log's metadata holds (``adk.state:`` keys), prefixes removed; {} for no log."""
        try:
            values = self.store.metadata(log_id)
        except SessionNotFound:
            return {}
        return {key.removeprefix(STATE): value for key, value in values.items() if key.startswith(STATE)}

    def merged_state(self, app: str, user: str, session_state: dict[str, Any]) -> dict[str, Any]:
        """Session state with the app's (``app:``) and the user's (``user:``) beside it, as ADK shows it."""
        merged = dict(session_state)
        merged.update({"app:" + k: v for k, v in self.state_of(app_log_id(app)).items()})
        merged.update({"user:" + k: v for k, v in self.state_of(user_log_id(app, user)).items()})
        return merged

    # -- sessions -----------------------------------------------------------------------

    def create(self, app: str, user: str, session_id: str, state: Mapping[str, Any]) -> Read | None:
        """Create the session's log holding its state (one write); None if the session exists."""
        if self.find(app, user, session_id) is not None:
            return None
        app_delta, user_delta, session_state = split_state(state)
        labels = {KIND: "session", APP: app, USER: user, SESSION: session_id}
        for log_id in candidates(app, user, session_id):
            batch = SessionBatch(create=(None, None), labels=labels, metadata=_facts(session_state))
            try:
                self.store.write_batch(log_id, batch)
            except SessionExists:
                if self.find(app, user, session_id) is not None:
                    return None  # another writer created it meanwhile
                continue  # the id is another session's (or differs from one only in case)
            self._found[(app, user, session_id)] = log_id
            self.write_shared(app, user, app_delta, user_delta)
            stored = self.store.get_session(log_id)
            if stored is None:  # deleted already by another process
                raise SessionNotFound(f"ADK session {session_id!r} was deleted while it was created")
            return Read(stored, [], self.merged_state(app, user, session_state))
        raise SessionExists(f"ADK session {session_id!r}: its log ids are taken by other sessions")

    def read(self, app: str, user: str, session_id: str, recent: int | None, after: float | None) -> Read | None:
        """The session's summary, state and events (the last ``recent``, those from ``after`` on), or None."""
        stored = self.find(app, user, session_id)
        if stored is None:
            return None
        try:
            events = self._events(stored.id, recent, after)
        except SessionNotFound:
            return None
        return Read(stored, events, self.merged_state(app, user, self.state_of(stored.id)))

    def _events(self, log_id: str, recent: int | None, after: float | None) -> list[str]:
        """The events' JSON, read backward from the end of the log in windows growing fourfold: the last
        ``recent``, then (as ``InMemorySessionService``) those after the last one stamped before ``after``.

        Events of other types in the log are skipped. The log keeps microseconds: an event stamped in the same
        microsecond as ``after`` is kept here, and cut by its exact timestamp when it is parsed.
        """
        if recent == 0:
            return []
        since = stamp(after) if after is not None else None
        window = recent if since is None else max(recent or 0, _FIRST_WINDOW)
        while True:
            read = self.store.load_events(log_id, last=window)
            mine = [e for e in read if e.event_type == AdkEvent.TYPE]
            done = window is None or len(read) < window  # the whole log is read
            if recent is not None and len(mine) >= recent:
                mine, done = mine[-recent:], True
            if since is not None:
                before = [n for n, e in enumerate(mine) if e.created_at < since]
                if before:  # the last event stamped before ``after`` is in the window: what follows it is all
                    mine, done = mine[before[-1] + 1 :], True
            if done:
                return [e.event_data for e in mine]
            window = (window or _FIRST_WINDOW) * 4

    def last_event_id(self, log_id: str) -> str | None:
        """The ADK id of the log's last ADK event (None if it has none), read backward from the end."""
        window = 1
        while True:
            read = self.store.load_events(log_id, last=window)
            mine = [e for e in read if e.event_type == AdkEvent.TYPE]
            if mine:
                return _decode_event_id(mine[-1].event_data).id
            if len(read) < window:
                return None
            window *= 4

    def sessions(self, app: str, user: str | None) -> list[tuple[StoredSession, dict[str, Any]]]:
        """The app's sessions (of one user, or all), found by their labels in the index, each with its state."""
        labels = {KIND: "session", APP: app} | ({USER: user} if user is not None else {})
        found = []
        users: dict[str, dict[str, Any]] = {}
        app_state = {"app:" + k: v for k, v in self.state_of(app_log_id(app)).items()}
        for stored in self.store.list_sessions(include_archived=True, labels=labels):
            owner = stored.labels[USER]
            if owner not in users:
                users[owner] = {"user:" + k: v for k, v in self.state_of(user_log_id(app, owner)).items()}
            found.append((stored, self.state_of(stored.id) | app_state | users[owner]))
        return found

    def delete(self, app: str, user: str, session_id: str) -> None:
        """Move the session's log to the trash; nothing stored: no-op."""
        stored = self.find(app, user, session_id)
        if stored is not None:
            with contextlib.suppress(SessionNotFound):  # deleted by another process: the same outcome
                self.store.delete_session(stored.id)
            self._found.pop((app, user, session_id), None)

    # -- appending ----------------------------------------------------------------------

    def append(
        self,
        app: str,
        user: str,
        session_id: str,
        marker: str | None,
        revision: tuple[float, str | None],
        event_json: str,
        event: tuple[str, float],
        state_delta: Mapping[str, Any],
    ) -> tuple[str, dt.datetime]:
        """Append an event with its session state (one write), then the app and user state it changes.

        :param marker: the head the caller's session was read at (None: a session made by hand, checked by
            ``revision``).
        :param revision: the caller's session's ``last_update_time`` and the id of its last event (None if it
            has none).
        :param event: the event's invocation id and timestamp.
        :returns: the new head (the event's id in the log) and its time: the session's new revision.
        :raises Stale: if the stored session moved on since the caller's copy.
        :raises SessionNotFound: if there is no such session.
        """
        stored = self.find(app, user, session_id)
        if stored is None:
            raise SessionNotFound(f"ADK session {session_id!r} of app {app!r}, user {user!r} not found")
        with self.lock(stored.id):
            stored = self.store.get_session(stored.id)
            if stored is None:
                raise SessionNotFound(f"ADK session {session_id!r} was deleted")
            head = stored.head_id or ""
            if marker is not None and marker != head:
                raise Stale
            if marker is None and not self._matches(stored, *revision):
                raise Stale
            app_delta, user_delta, session_delta = split_state(state_delta)
            invocation, timestamp = event
            record = StoredEvent(
                id=new_id(),
                session_id=stored.id,
                parent_id=stored.head_id,
                invocation_id=invocation or self.invocation_id,
                event_type=AdkEvent.TYPE,
                event_data=event_json,
                created_at=stamp(timestamp),
            )
            try:
                # The session's state goes in the event's write: both are stored, or neither.
                self.store.write_batch(stored.id, SessionBatch(events=[record], metadata=_facts(session_delta)))
            except SessionConflict:
                raise Stale from None  # another process appended between the check and the write
            # Shared state only once the event is in: a refused event never changes it.
            self.write_shared(app, user, app_delta, user_delta)
        return record.id, record.created_at

    def _matches(self, stored: StoredSession, last_update_time: float, last_event_id: str | None) -> bool:
        """Whether a session without a marker is at the log's revision, as ADK's ``DatabaseSessionService``
        decides: not updated since its ``last_update_time``, or its last event is the log's last ADK event
        (none stored, for a session without events). A Session built by hand, or rebuilt from JSON, passes."""
        if stored.updated_at.timestamp() <= last_update_time + 1e-6:
            return True
        return self.last_event_id(stored.id) == last_event_id

    def write_shared(self, app: str, user: str, app_delta: dict[str, Any], user_delta: dict[str, Any]) -> None:
        """Write app and user state, each to its own log (one write each, the log created by its first)."""
        if app_delta:
            self._write_state(app_log_id(app), {KIND: "app_state", APP: app}, app_delta)
        if user_delta:
            self._write_state(user_log_id(app, user), {KIND: "user_state", APP: app, USER: user}, user_delta)

    def _write_state(self, log_id: str, labels: dict[str, str], delta: dict[str, Any]) -> None:
        facts = _facts(delta)
        for _ in range(3):
            try:
                self.store.write_batch(log_id, SessionBatch(metadata=facts))
                return
            except SessionNotFound:
                pass
            try:
                self.store.write_batch(log_id, SessionBatch(create=(None, None), labels=labels, metadata=facts))
                return
            except SessionExists:
                continue  # another writer created it first: write after it
        raise SessionConflict(f"state log {log_id}: created and deleted by other writers meanwhile")
