"""The session manager: what an application holds for the conversation it is in."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import EllipsisType
from typing import Any, NamedTuple, Self

import msgspec

from eventlog import new_id, utcnow
from sessions.errors import SessionExists, SessionHistoryMismatch, SessionNotFound, SessionWriteError
from sessions.events import EventBase, deserialize_event, serialize_event
from sessions.hold import SessionHold
from sessions.models import SessionBatch, StoredEvent, StoredSession
from sessions.protocol import SessionService, check_session_id, load_conversation

__all__ = ["Resumed", "SessionManager"]

AnyEvent = EventBase


class Resumed(NamedTuple):
    """What :meth:`SessionManager.resume` returns."""

    manager: SessionManager
    events: list[EventBase]
    server_session_id: str | None
    last_event_at: dt.datetime | None
    invocation_id: str


class SessionManager:
    """Owns the current session's identity and persists a growing event list.

    A new session is created lazily, at the first event, server id or metadata
    write, so sessions the user never used are never resumed.
    """

    def __init__(
        self,
        service: SessionService,
        session_id: str,
        *,
        directory: str | None,
        git_root: str | None,
        created: bool,
    ) -> None:
        self._service = service
        self._session_id = session_id
        self._invocation_id = new_id()
        self._directory = directory
        self._git_root = git_root
        self._created = created
        self._persisted_count = 0
        self._last_persisted: AnyEvent | None = None
        self._head_id: str | None = None
        self._unconfirmed: list[str] = []
        """Ids of a batch whose write failed without a clean rollback: some may be on disk."""
        self._create_failed = False
        """An attempt to create the session raised; its header may be on disk all the same."""
        self._batch: SessionBatch | None = None
        """Writes gathered by :meth:`batch`, to go out together when it ends."""
        self._pending_count: tuple[int, AnyEvent, str | None] | None = None
        """Inside a batch: the count, last event and head once the gathered events are written."""
        self._labels: dict[str, str] = {}
        self._attached = False
        """Made by :meth:`attach`: the conversation was never read, so only :meth:`append` may write events."""

    @classmethod
    def create_new(
        cls,
        service: SessionService,
        directory: str | None = None,
        git_root: str | None = None,
        *,
        session_id: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Self:
        """A manager for a new session; nothing is written until there is something to keep.

        :param session_id: the application's own id for it (see :func:`~sessions.protocol.check_session_id`);
            a new UUIDv7 if None. If a session with that id exists, the first write raises ``SessionExists``.
        :param labels: labels to create it with (``LocalSessionService.list_sessions(labels=...)`` finds it).
        :raises InvalidSessionId: if ``session_id`` is not a valid id.
        """
        sid = new_id() if session_id is None else check_session_id(session_id)
        manager = cls(service, sid, directory=directory, git_root=git_root, created=False)
        manager._labels = dict(labels or {})
        return manager

    @classmethod
    def attach(cls, service: SessionService, stored: StoredSession) -> Self:
        """A manager that appends to a stored session without reading its conversation (see :meth:`append`).

        For an adapter that adds items as they come and never holds the whole list.
        """
        manager = cls(service, stored.id, directory=stored.directory, git_root=stored.git_root, created=True)
        manager._head_id = stored.head_id
        manager._attached = True
        return manager

    @classmethod
    def resume(
        cls, service: SessionService, stored: StoredSession, *, last: int | None = None, from_compaction: bool = False
    ) -> Resumed:
        """Load a stored session and return a manager that continues it.

        :param last: resume with only the last ``last`` events (of those ``from_compaction`` leaves).
        :param from_compaction: resume from the newest :class:`~sessions.Compaction` (included).

        With a window, ``Resumed.events`` holds only the window, and
        :meth:`persist_events` then takes the window plus the new events: the
        same "extends what was persisted" rule, applied to the window.
        """
        events, head_id, last_event_at = load_conversation(
            service, stored.id, last=last, from_compaction=from_compaction
        )
        manager = cls(service, stored.id, directory=stored.directory, git_root=stored.git_root, created=True)
        manager._persisted_count = len(events)
        manager._last_persisted = events[-1] if events else None
        manager._head_id = head_id
        return Resumed(manager, events, stored.server_session_id, last_event_at, manager._invocation_id)

    @property
    def session_id(self) -> str:
        return self._session_id

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def head_id(self) -> str | None:
        """The id of the last event persisted, or None."""
        return self._head_id

    @property
    def persisted_count(self) -> int:
        return self._persisted_count

    def _ensure_created(self) -> None:
        if self._batch is not None:
            if not self._created and self._batch.create is None:
                self._batch.create = (self._directory, self._git_root)
                self._batch.labels = self._labels
            return
        if not self._created:
            try:
                if self._labels:
                    create: Any = self._service.create_session
                    create(self._session_id, self._directory, self._git_root, labels=self._labels)
                else:
                    self._service.create_session(self._session_id, self._directory, self._git_root)
            except SessionExists:
                # The id is ours alone (a new UUIDv7), so this is the header of our own earlier
                # attempt, which reached the disk although that attempt raised (its clean-up failed).
                if not self._create_failed:
                    raise
            except SessionWriteError:
                self._create_failed = True
                raise
            self._created = True

    def persist_events(self, events: Sequence[AnyEvent], *, times: Sequence[dt.datetime] | None = None) -> None:
        """Persist the events of ``events`` not yet persisted, as one batch.

        ``events`` is the whole conversation so far; calling again with the same
        list does nothing.

        :param times: when each event of ``events`` happened (timezone-aware), if not now: an import keeps
            its source's times. Only the new events' are used. Times are kept, never used to order events.
        :raises SessionHistoryMismatch: if ``events`` does not extend what was
            persisted (shorter, or a different event where the last persisted
            one was); nothing is written.
        :raises SessionConflict: if another writer appended to this session;
            nothing is written. Resume again to continue.
        """
        if self._attached:
            raise RuntimeError(
                f"session {self._session_id}: this manager was attached without its conversation; use append()"
            )
        if times is not None and len(times) != len(events):
            raise ValueError(f"times has {len(times)} entries for {len(events)} events")
        count, last, head = self._persisted_count, self._last_persisted, self._head_id
        if self._pending_count is not None:  # inside a batch, after an earlier persist in it
            count, last, head = self._pending_count
        if len(events) < count or (count and events[count - 1] != last):
            raise SessionHistoryMismatch(
                f"session {self._session_id}: the event list does not extend the {count} events already "
                f"persisted (got {len(events)}, and position {count - 1} differs); nothing was written. "
                "Pass the whole conversation, as resumed, with new events at the end"
            )
        if self._unconfirmed:
            self._confirm_unconfirmed(events)
            count, head = self._persisted_count, self._head_id
        if len(events) == count:
            return
        parent, gathered = self._write(events[count:], head, times[count:] if times is not None else None)
        if gathered:
            self._pending_count = (len(events), events[-1], parent)
            return
        self._persisted_count = len(events)
        self._last_persisted = events[-1]
        self._head_id = parent

    def append(self, events: Sequence[AnyEvent], *, times: Sequence[dt.datetime] | None = None) -> list[str]:
        """Append ``events`` after the session's head, without the conversation before them; their new ids.

        For adapters that add items as they come (with :meth:`attach`, or after :meth:`resume`).

        :raises SessionConflict: if another writer appended since this manager last wrote or read the head;
            nothing is written. ``get_session`` the session again, :meth:`attach`, and retry.
        """
        if times is not None and len(times) != len(events):
            raise ValueError(f"times has {len(times)} entries for {len(events)} events")
        if not events:
            return []
        if self._batch is not None:
            raise RuntimeError("append inside batch(): use persist_events in a batch, or append outside it")
        if self._unconfirmed:
            stored = self._service.get_session(self._session_id)
            self._head_id = stored.head_id if stored is not None else None
            self._unconfirmed = []
        before = self._head_id
        ids: list[str] = []
        head, _ = self._write(events, before, times, ids)
        self._head_id = head
        if not self._attached:
            self._persisted_count += len(events)
            self._last_persisted = events[-1]
        return ids

    def _write(
        self,
        events: Sequence[AnyEvent],
        head: str | None,
        times: Sequence[dt.datetime] | None,
        ids: list[str] | None = None,
    ) -> tuple[str | None, bool]:
        """Write ``events`` after ``head``, or gather them into the batch; the new head, and whether gathered."""
        # Serialize first, so an event that cannot be encoded leaves no empty session behind;
        # then create, so no event is stamped earlier than the session it belongs to.
        check = getattr(getattr(self._service, "event_types", None), "check", None)
        if check is not None:
            for event in events:
                check(event)
        serialized = [serialize_event(event) for event in events]
        if times is not None:
            for when in times:
                if when.tzinfo is None:
                    raise ValueError(f"event time {when.isoformat()} must be timezone-aware")
        self._ensure_created()
        batch: list[StoredEvent] = []
        parent = head
        for n, (event_type, event_data) in enumerate(serialized):
            event_id = new_id()
            batch.append(
                StoredEvent(
                    id=event_id,
                    session_id=self._session_id,
                    parent_id=parent,
                    invocation_id=self._invocation_id,
                    event_type=event_type,
                    event_data=event_data,
                    created_at=times[n] if times is not None else utcnow(),
                )
            )
            parent = event_id
        if ids is not None:
            ids.extend(e.id for e in batch)
        if self._batch is not None:
            self._batch.events.extend(batch)
            return parent, True
        try:
            self._service.append_events(self._session_id, batch)
        except SessionWriteError as exc:
            if not getattr(exc.__cause__, "rolled_back", True):
                self._unconfirmed = [e.id for e in batch]
            raise
        return parent, False

    def _confirm_unconfirmed(self, events: Sequence[AnyEvent]) -> None:
        """After a write that may have partly landed, count what is on disk as persisted."""
        stored = self._service.get_session(self._session_id)
        head = stored.head_id if stored is not None else None
        if head in self._unconfirmed:
            landed = self._unconfirmed.index(head) + 1
            self._persisted_count += landed
            self._last_persisted = events[self._persisted_count - 1]
            self._head_id = head
        self._unconfirmed = []

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Gather the writes made inside the block into one write and one sync, made when it ends.

        Events, the server session id and metadata written in the block go out
        together (with the session's creation, if it is new) and are durable
        when the block ends; if the block raises, nothing is written. Services
        without ``write_batch`` get the same calls one by one.
        """
        if self._batch is not None:
            yield  # nested: the outer block writes
            return
        self._batch = SessionBatch()
        self._pending_count = None
        try:
            yield
            batch = self._batch
        finally:
            self._batch = None
            pending, self._pending_count = self._pending_count, None
        if not batch:
            return
        write_batch = getattr(self._service, "write_batch", None)
        if write_batch is None:
            self._write_one_by_one(batch)
        else:
            try:
                write_batch(self._session_id, batch)
            except SessionWriteError:
                if batch.create is not None:
                    self._create_failed = True
                raise
        if batch.create is not None:
            self._created = True
        if pending is not None:
            self._persisted_count, self._last_persisted, self._head_id = pending

    def _write_one_by_one(self, batch: SessionBatch) -> None:
        service, session_id = self._service, self._session_id
        if batch.create is not None:
            service.create_session(session_id, *batch.create)
            self._created = True
        if batch.events:
            service.append_events(session_id, batch.events)
        if batch.server_session_id is not None:
            service.update_server_session_id(session_id, batch.server_session_id)
        for key, value in batch.metadata.items():
            service.set_metadata(session_id, key, value)

    def rewind(self, to_event_id: str | None, *, expected_head: str | EllipsisType | None = ...) -> list[EventBase]:
        """Make ``to_event_id`` the head (None: the start); the conversation as it now stands.

        The events after it stay in the log (see :meth:`LocalSessionService.rewind`);
        the next :meth:`persist_events` takes the returned list plus new events.

        :param expected_head: rewind only if the stored head is still this event, else raise
            ``SessionConflict`` (:meth:`pop` passes the head this manager last wrote or read).
        :raises SessionNotFound: if the event is not in this session.
        """
        if self._batch is not None:
            raise RuntimeError("rewind inside batch(): end the batch first")
        if not self._created:
            if to_event_id is not None:
                raise SessionNotFound(f"no event {to_event_id} in session {self._session_id}")
            return []
        self._service.rewind(self._session_id, to_event_id, expected_head=expected_head)
        events, head_id, _ = load_conversation(self._service, self._session_id)
        self._persisted_count = len(events)
        self._last_persisted = events[-1] if events else None
        self._head_id = head_id
        self._unconfirmed = []
        self._attached = False
        return events

    def pop(self) -> list[EventBase]:
        """Rewind past the last event (it stays in the log); the conversation as it now stands."""
        if not self._created or self._head_id is None:
            return []
        branch = self._service.load_events(self._session_id, last=2)
        return self.rewind(branch[0].id if len(branch) == 2 else None, expected_head=self._head_id)

    def persist_server_session_id(self, server_session_id: str) -> None:
        """Record the remote session id, if it changed."""
        if self._batch is not None:
            if self._batch.server_session_id != server_session_id and self._stored_server_id() != server_session_id:
                self._ensure_created()
                self._batch.server_session_id = server_session_id
            return
        if self._created:
            stored = self._service.get_session(self._session_id)
            if stored is not None and stored.server_session_id == server_session_id:
                return
        self._ensure_created()
        self._service.update_server_session_id(self._session_id, server_session_id)

    def archive(self) -> None:
        """Archive the session, if it was ever written."""
        if self._created:
            self._service.archive(self._session_id)

    def archive_and_reset(self) -> None:
        """Archive the session and start a fresh (not yet written) one, as ``/new`` does."""
        self.archive()
        self._session_id = new_id()
        self._invocation_id = new_id()
        self._created = False
        self._persisted_count = 0
        self._last_persisted = None
        self._head_id = None
        self._unconfirmed = []
        self._create_failed = False
        self._attached = False

    def hold(self) -> SessionHold:
        """Hold this session for this process while the conversation runs (use as a context manager).

        Another process's ``find_resumable`` then passes it by, so a second chat or agent in the same folder
        starts its own session instead of writing into this one. The hold dies with the process, however it
        ends (see :mod:`sessions.hold`).

        :raises SessionBusy: if another process holds it.
        :raises TypeError: if the store keeps no lock files (only the file store can hold a session).
        """
        locks_dir = getattr(self._service, "locks_dir", None)
        if not isinstance(locks_dir, Path):
            raise TypeError(f"{type(self._service).__name__} cannot hold a session; LocalSessionService can")
        return SessionHold(locks_dir, self._session_id).acquire()

    def deserialize_event(self, event_type: str, event_data: str | bytes | msgspec.Raw) -> EventBase:
        """Type one stored event as this manager's store does (with its ``event_types``, if it has any)."""
        own = getattr(self._service, "deserialize_event", None)
        if own is not None:
            event: EventBase = own(event_type, event_data)
            return event
        return deserialize_event(event_type, event_data)

    def get_metadata(self, key: str) -> Any:
        """The session's value for ``key``, or None (always None before the session is written)."""
        if self._batch is not None and key in self._batch.metadata:
            return self._batch.metadata[key]
        if not self._created:
            return None
        return self._service.get_metadata(self._session_id, key)

    def set_metadata(self, key: str, value: Any) -> None:
        """Store a metadata value (any JSON value with a store that takes them, as the file store does);
        writing the value it already has costs nothing."""
        if self._batch is not None and key in self._batch.metadata:
            self._batch.metadata[key] = value
            return
        if self._created and self._service.get_metadata(self._session_id, key) == value:
            return
        self._ensure_created()
        if self._batch is not None:
            self._batch.metadata[key] = value
            return
        self._service.set_metadata(self._session_id, key, value)

    def _stored_server_id(self) -> str | None:
        if not self._created:
            return None
        stored = self._service.get_session(self._session_id)
        return stored.server_session_id if stored is not None else None
