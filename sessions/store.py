"""The file-based session service (the protocol it implements is in :mod:`sessions.protocol`).

Each session is one log under ``ROOT/sessions/`` (see :mod:`sessions._layout`
and ``docs/FORMAT.md``); the index (:mod:`sessions.index`) is a cache that
saves reading them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import EllipsisType
from typing import Any, Self

import msgspec

from eventlog import (
    KIND_HEAD,
    LogBusy,
    LogState,
    Record,
    ensure_private_dir,
    new_id,
    utcnow,
    verify_log,
)
from eventlog._lock import check_timeout
from eventlog.durability import check_durability
from sessions import conflicts, deletion, rewrite
from sessions._layout import Layout
from sessions._logs import SessionLogs
from sessions._mapping import (
    FACT_ARCHIVED,
    FACT_METADATA,
    FACT_SERVER_SESSION,
    Conversation,
    check_json,
    check_labels,
    event_checker,
    event_record,
    fact_record,
    loads_json,
    require_str,
    stored_event,
)
from sessions.catalog import Catalog
from sessions.errors import (
    SessionBusy,
    SessionExists,
    SessionNotFound,
    UnsafeStorePath,
    translate_log_errors,
)
from sessions.events import EventBase, EventTypes
from sessions.index import Row, SessionIndex
from sessions.models import SessionBatch, StoredEvent, StoredSession, TrashedSession, VerifyReport
from sessions.protocol import SESSION_ID, SessionService, check_session_id
from sessions.rewrite import tree_records
from sessions.tree import SessionTree, branch_records, read_session_tree

__all__ = ["Conversation", "LocalSessionService", "SessionService", "check_session_id"]


class LocalSessionService:
    """Sessions as append-only JSON-lines logs under ``root`` (see the module docs).

    Safe to share between threads, and between processes on the same store.
    """

    def __init__(
        self,
        root: Path,
        *,
        lock_timeout: float = 2.0,
        durability: str = "fsync",
        event_types: Iterable[type[EventBase]] | EventTypes = (),
    ) -> None:
        self.root = root
        self.event_types = event_types if isinstance(event_types, EventTypes) else EventTypes(event_types)
        self.lock_timeout = check_timeout(lock_timeout)
        self.durability = check_durability(durability)
        self.layout = Layout(root)
        self.sessions_dir = self.layout.sessions_dir
        self.locks_dir = self.layout.locks_dir
        self.trash_dir = self.layout.trash_dir
        # ".index.lock": a name no session id can take (ids do not start with "."), unlike "index.lock".
        self._index = SessionIndex(self.layout.index_path, self.locks_dir / ".index.lock")
        self._logs = SessionLogs(self.layout, self._index, lock_timeout=self.lock_timeout, durability=self.durability)
        self._catalog = Catalog(self.layout, self._index, lambda sid, row: self._summary(sid, row)[0])

    @classmethod
    def open(
        cls,
        root: str | os.PathLike[str],
        *,
        lock_timeout: float = 2.0,
        durability: str = "fsync",
        event_types: Iterable[type[EventBase]] = (),
    ) -> Self:
        """Open the store at ``root``, creating it (mode 0700, durably) if missing.

        :param lock_timeout: seconds a writer waits for a session's lock before :class:`SessionBusy`
            (negative: wait forever).
        :param durability: ``"fsync"`` (survives power loss) or ``"flush"`` (survives a process crash).
        :param event_types: the application's own event types (:class:`~sessions.EventBase` subclasses, each
            naming its tag in ``TYPE``): typed on resume and by :meth:`deserialize_event`, checked on append,
            known to :meth:`verify`.
        :raises ValueError: for a bad ``lock_timeout`` or ``durability``, or an event type whose tag is taken.
        :raises UnsafeStorePath: if the store's folders cannot be made.
        """
        check_timeout(lock_timeout)
        check_durability(durability)
        types = EventTypes(event_types)
        path = Path(root).expanduser()
        for directory in (path, path / "sessions", path / "locks"):
            try:
                ensure_private_dir(directory, durable=durability == "fsync")
            except (NotADirectoryError, FileExistsError) as exc:
                raise UnsafeStorePath(f"{directory} exists but is not a directory; pick another store path") from exc
            except OSError as exc:
                # A read-only store (a backup, a mounted snapshot) can still be read, even one whose
                # disposable folders (locks/) were never made: its writes fail later, with a clear error.
                read_only = isinstance(exc, PermissionError) or exc.errno == errno.EROFS
                if not read_only or not (directory.is_dir() or (directory != path and path.is_dir())):
                    raise
        return cls(path, lock_timeout=lock_timeout, durability=durability, event_types=types)

    def close(self) -> None:
        """Save the index rows of the sessions written and release open descriptors."""
        self._logs.close()
        self._index.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, durability={self.durability!r})"

    # -- logs and summaries ----------------------------------------------------------

    def log_path(self, session_id: str) -> Path:
        """The log file of a session (which may not exist yet).

        :raises InvalidSessionId: if ``session_id`` is not a valid session id.
        """
        return self.layout.log_path(session_id)

    def _summary(self, session_id: str, row: Row | None = None) -> tuple[StoredSession, LogState]:
        return self._logs.summary(session_id, row, self.copies_of(session_id))

    # -- sessions ---------------------------------------------------------------------

    def create_session(
        self,
        session_id: str,
        directory: str | None,
        git_root: str | None,
        *,
        labels: Mapping[str, str] | None = None,
        events: Sequence[StoredEvent] = (),
        metadata: Mapping[str, Any] | None = None,
        created_at: dt.datetime | None = None,
        head_id: str | None = None,
    ) -> StoredSession:
        """Create a session's log (its header line, and whatever else is given), in one write, durably.

        :param labels: names and values to find the session by (``list_sessions(labels=...)``); fixed at creation.
        :param events: events to start with, in the order to store them. Unlike :meth:`append_events`
            they may form a tree (an import keeps its source's branches): each parent must be None or an
            earlier event of the list.
        :param metadata: metadata values to start with (each any JSON value).
        :param created_at: the session's creation time, if not now (an import keeps the source's).
        :param head_id: the event to make the active head, if not the one the chain rule picks (the deepest
            leaf; see :mod:`eventlog.chain`).
        :raises SessionExists: if the session already exists (or one whose id differs only in case).
        :raises ValueError: if an event is malformed, a parent is not an earlier event, or ``head_id`` is not
            one of ``events``; nothing is written.
        """
        ts = (created_at or utcnow()).astimezone(dt.UTC)
        records = tree_records([self._checked_record(session_id, event) for event in events], head_id, ts)
        for key, value in (metadata or {}).items():
            records.append(fact_record(FACT_METADATA, check_json(value), ts, key=require_str(key, "key")))
        return self._create(session_id, directory, git_root, records, labels=check_labels(labels), created_at=ts)

    def _create(
        self,
        session_id: str,
        directory: str | None,
        git_root: str | None,
        records: list[Record],
        *,
        forked_from: tuple[str, str | None] | None = None,
        labels: Mapping[str, str] | None = None,
        created_at: dt.datetime | None = None,
    ) -> StoredSession:
        self.refuse_case_clash(session_id)
        before = self.layout.stamp()
        session = self._logs.create(
            session_id, directory, git_root, records, forked_from=forked_from, labels=labels, created_at=created_at
        )
        self.layout.note_created(session_id, before)
        self._catalog.note_created(before)
        return session

    def refuse_case_clash(self, session_id: str) -> None:
        """Refuse a new session whose id differs only in case from a stored one's (one file on macOS, Windows).

        A UUID id is lower case (``check_session_id``), so only an application's other ids need the check,
        and a generated id never costs the listing of ``sessions/``.

        :raises SessionExists: naming the stored session.
        :raises InvalidSessionId: if ``session_id`` is not a valid id.
        """
        if SESSION_ID.fullmatch(check_session_id(session_id)):
            return
        other = self.layout.scan().clashes(session_id)
        if other is not None:
            raise SessionExists(f"session {other} exists in {self.root}; ids differing only in case are refused")

    def get_session(self, session_id: str) -> StoredSession | None:
        """The session, or None if it does not exist."""
        try:
            session = self._summary(session_id)[0]
        except SessionNotFound:
            return None
        self._index.flush()
        return session

    def find_resumable(self, directory: str | None, git_root: str | None, max_age_secs: float) -> StoredSession | None:
        """The most recently updated session to continue, or None.

        A session matches if its directory equals ``directory`` or its git root
        equals ``git_root`` (None matches nothing), it is not archived, and it
        was updated strictly after ``now - max_age_secs`` (``math.inf``: any age), and
        no other process holds it (``SessionManager.hold``: it is that process's live
        conversation). Ties on ``updated_at`` go to the larger session id (UUIDv7: the
        later created). Reads the index, and a log only where the index is behind it.
        """
        return self._catalog.find_resumable(directory, git_root, max_age_secs)

    def list_sessions(
        self, *, include_archived: bool = False, labels: Mapping[str, str] | None = None
    ) -> list[StoredSession]:
        """Every session, most recently updated first (ties: larger id first).

        :param labels: only sessions with every one of these labels (answered from the index, like the rest).
        """
        sessions = self._catalog.list_sessions(include_archived=include_archived)
        if labels:
            wanted = check_labels(labels).items()
            sessions = [s for s in sessions if wanted <= s.labels.items()]
        return sessions

    def copies_of(self, session_id: str) -> list[Path]:
        """The sync conflict copies beside one session's log (see :mod:`sessions.conflicts`)."""
        return self._catalog.copies_of(session_id)

    # -- events -----------------------------------------------------------------------

    def load_events(
        self, session_id: str, *, last: int | None = None, from_compaction: bool = False
    ) -> list[StoredEvent]:
        """The session's events, oldest first, along the active branch (see ``eventlog.chain``).

        :param last: only the last ``last`` events (of those ``from_compaction`` leaves).
        :param from_compaction: start at the newest :class:`~sessions.Compaction` (included), if any.

        A window of a straight log (one writer's, the common case) is read backward
        from the end of the file, at a cost in proportion to what it returns. A
        log with branches (a sync merge) or a conflict copy is read whole, and the
        window cut from its active branch. Lines that cannot be read are skipped
        with a :class:`DamagedLogWarning`; never raises for content.
        """
        copies = self.copies_of(session_id)
        return [stored_event(session_id, r) for r in self._logs.window(session_id, last, from_compaction, copies)]

    def load_conversation(
        self, session_id: str, *, last: int | None = None, from_compaction: bool = False
    ) -> Conversation:
        """The session's events (or a window of them), typed, with the last one's id and time: what a resume needs.

        A clean, linear log without conflict copies (the common case) is read in
        one pass, a chunk at a time, and the pass also brings the log's summary
        up to date, so the first append after it reads nothing again.
        """
        return self._logs.conversation(session_id, last, from_compaction, self.copies_of(session_id), self.event_types)

    def deserialize_event(self, event_type: str, event_data: str | bytes | msgspec.Raw) -> EventBase:
        """Type one stored event as this store's types (the standard ones and its ``event_types``).

        Never raises for content: what cannot be typed is an :class:`~sessions.UnknownEvent`.
        """
        return self.event_types.deserialize(event_type, event_data)

    def load_tree(self, session_id: str) -> SessionTree:
        """Every event of the session with every branch and the active head (``load_events`` is its active branch).

        :raises SessionNotFound: if the session does not exist.
        """
        path = self.log_path(session_id)
        try:
            return translate_log_errors(
                lambda: read_session_tree(session_id, path, self.copies_of(session_id)), session_id
            )
        except FileNotFoundError:
            raise SessionNotFound(f"no session {session_id} in {self.root}") from None

    def append_event(
        self,
        session_id: str,
        event_id: str,
        parent_id: str | None,
        invocation_id: str,
        event_type: str,
        event_data: str,
    ) -> None:
        """Append one event; see :meth:`append_events`."""
        self.append_events(
            session_id,
            [
                StoredEvent(
                    id=event_id,
                    session_id=session_id,
                    parent_id=parent_id,
                    invocation_id=invocation_id,
                    event_type=event_type,
                    event_data=event_data,
                    created_at=utcnow(),
                )
            ],
        )

    def append_events(self, session_id: str, events: Sequence[StoredEvent]) -> None:
        """Append events as one batch: one lock, one write, one sync.

        The first event's parent must be the session's head and each later
        one's the event before it, so the log stays one chain.

        :raises SessionConflict: if the head moved (another writer); nothing is written.
        :raises SessionBusy: if the lock was not free within ``lock_timeout``; nothing is written.
        :raises SessionWriteError: if the disk refused the write; nothing is written.
        :raises ValueError: if an event is malformed (nothing is written).
        """
        records = [self._checked_record(session_id, event) for event in events]
        if records:
            self._append(session_id, records)

    def _checked_record(self, session_id: str, event: StoredEvent) -> Record:
        """The log record of an event, refused (ValueError) if it is of an application's type and does not fit it.

        A standard type's data is stored as given, as the reference does (a bad one reads back as UnknownEvent).
        """
        record = event_record(session_id, event)
        cls = self.event_types.types.get(record.type or "")
        if (
            cls is not None
            and cls in self.event_types.application
            and type(self.event_types.deserialize(record.type or "", record.data)) is not cls
        ):
            raise ValueError(
                f"event {event.id}: its data is not a valid {record.type!r} event ({cls.__qualname__}); nothing written"
            )
        return record

    def write_batch(self, session_id: str, batch: SessionBatch) -> None:
        """Write a whole turn (events, server id, metadata, and the session's creation if new) as one batch.

        One write and, with ``durability="fsync"``, one sync (plus the folder's, for a new session):
        everything is durable when it returns, or nothing was written.

        :raises SessionExists: if ``batch.create`` is set and the session exists.
        :raises SessionConflict: if the events do not continue the head; nothing is written.
        """
        records = [self._checked_record(session_id, event) for event in batch.events]
        ts = utcnow()
        if batch.server_session_id is not None:
            records.append(
                fact_record(FACT_SERVER_SESSION, require_str(batch.server_session_id, "server_session_id"), ts)
            )
        for key, value in batch.metadata.items():
            records.append(fact_record(FACT_METADATA, check_json(value), ts, key=require_str(key, "key")))
        if batch.create is not None:
            self._create(session_id, batch.create[0], batch.create[1], records, labels=check_labels(batch.labels))
        elif records:
            self._append(session_id, records)

    def _append(self, session_id: str, records: list[Record], *, expect_head: str | EllipsisType | None = ...) -> None:
        check_session_id(session_id)
        # Fold in a sync tool's conflict copies first, so the batch continues the head readers saw.
        if self.copies_of(session_id):
            conflicts.merge_session_copies(self, session_id)
        self._logs.append(session_id, records, expect_head=expect_head)

    def _append_fact(self, session_id: str, name: str, value: object, key: str | None = None) -> None:
        self._append(session_id, [fact_record(name, value, utcnow(), key=key)])

    # -- session facts ----------------------------------------------------------------

    def update_server_session_id(self, session_id: str, server_session_id: str) -> None:
        """Record the remote session id. Does not change ``updated_at``."""
        self._append_fact(session_id, FACT_SERVER_SESSION, require_str(server_session_id, "server_session_id"))

    def archive(self, session_id: str) -> None:
        """Mark the session archived (``archived_at`` = now). Nothing is deleted.

        Writes nothing if it is archived already: ``archived_at`` keeps its first time (``gc`` counts from it).
        """
        if self._summary(session_id)[0].archived_at is None:
            self._append_fact(session_id, FACT_ARCHIVED, True)

    def unarchive(self, session_id: str) -> None:
        """Clear the archive flag (writes nothing if the session is not archived)."""
        if self._summary(session_id)[0].archived_at is not None:
            self._append_fact(session_id, FACT_ARCHIVED, False)

    def get_metadata(self, session_id: str, key: str) -> Any:
        """The value stored under ``key`` (any JSON value; a str as the reference stores), or None."""
        require_str(key, "key")
        _, state = self._summary(session_id)
        ref = state.fact(FACT_METADATA, key)
        if ref is None:
            return None
        raw = ref.value if ref.value is not None else self._logs.fact_reader(session_id)(ref)
        return loads_json(raw) if raw is not None else None

    def set_metadata(self, session_id: str, key: str, value: Any) -> None:
        """Store ``value`` (any JSON value: str, number, bool, None, list, dict) under ``key``; the newest wins.

        :raises TypeError: if ``value`` is not a JSON value (nothing is written).
        :raises ValueError: if it holds ``inf`` or ``nan``.
        """
        self._append_fact(session_id, FACT_METADATA, check_json(value), key=require_str(key, "key"))

    def metadata(self, session_id: str) -> dict[str, Any]:
        """Every metadata key of the session with its value."""
        _, state = self._summary(session_id)
        reader = self._logs.fact_reader(session_id)
        values: dict[str, Any] = {}
        for key, ref in sorted(state.facts.get(FACT_METADATA, {}).items()):
            raw = ref.value if ref.value is not None else reader(ref)
            if raw is not None:
                values[key] = loads_json(raw)
        return values

    # -- maintenance ------------------------------------------------------------------

    def session_ids(self) -> list[str]:
        """The id of every session log in the store, sorted, archived ones included."""
        return sorted(self.layout.scan().logs or ())

    def drop_index(self) -> None:
        """Forget the index, on disk and in memory, so the next reads rebuild it from the logs."""
        self._index.clear()
        self._logs.forget()

    def repair_torn_tail(self, session_id: str) -> int:
        """Cut off a torn tail now, as the next append would; the bytes are saved to ``trash/`` first.

        :returns: how many bytes were cut off (0 if the log ends with a complete line).
        :raises SessionNotFound: if the session does not exist.
        :raises SessionBusy: if a writer held the lock for longer than ``lock_timeout``.
        """
        log = self._logs.log(session_id)
        try:
            torn = translate_log_errors(lambda: log.state().torn_bytes, session_id)
            if torn:
                translate_log_errors(log.repair, session_id)
        except FileNotFoundError:
            raise SessionNotFound(f"no session {session_id} in {self.root}") from None
        return torn

    def verify(self, session_id: str) -> VerifyReport:
        """Check a session's log: damaged lines, torn tail, duplicates, gaps, forks, payloads of the wrong shape.

        Events of a type this store was not given (``event_types``) are not damage: they are counted by type
        in ``unknown_types``.
        """
        path = self.log_path(session_id)
        unknown: dict[str, int] = {}
        try:
            report = translate_log_errors(
                lambda: verify_log(path, event_checker(self.event_types, unknown)), session_id
            )
        except FileNotFoundError:
            raise SessionNotFound(f"no session {session_id} in {self.root}") from None
        return VerifyReport(
            session_id=session_id,
            path=report.path,
            size=report.size,
            events=report.events,
            heads=report.heads,
            findings=report.findings + conflicts.copy_findings(self.copies_of(session_id)),
            unknown_types=unknown,
        )

    # -- branches and the trash -------------------------------------------------------

    def fork_session(self, session_id: str, at_event_id: str | None = None) -> StoredSession:
        """A new session holding the active branch up to ``at_event_id`` (the head if None), self-contained.

        It has the same directory and git root, and records where it came from
        (``forked_from``, ``fork_event_id``); it survives the original's deletion.

        :raises SessionNotFound: if the session, or ``at_event_id`` in it, does not exist.
        """
        tree = self.load_tree(session_id)
        at = at_event_id if at_event_id is not None else tree.active_head
        if at is not None and at not in tree.parent_of:
            raise SessionNotFound(f"no event {at_event_id} in session {session_id}")
        original, _ = self._summary(session_id)
        records = branch_records(tree, at)
        return self._create(new_id(), original.directory, original.git_root, records, forked_from=(session_id, at))

    def replace_events(
        self, session_id: str, events: Sequence[StoredEvent], *, head_id: str | None = None
    ) -> StoredSession:
        """Replace the session's events with ``events`` in one step; the old log is kept whole in ``trash/replaced/``.

        The header and facts (metadata, archive flag, server id) stay. ``events`` may form a tree, as in
        :meth:`create_session`. Readers see the old log or the new one; an append waiting for the lock goes
        into the new one, or fails with ``SessionConflict`` if the head it knew is gone. For pruning
        (an adapter dropping old checkpoints); to undo turns, :meth:`rewind` keeps them in the log instead.

        :raises SessionNotFound: if there is no such session.
        :raises ValueError: if an event is malformed, or the tree or ``head_id`` is not valid; nothing changed.
        """
        records = [self._checked_record(session_id, event) for event in events]
        # A sync tool's conflict copies are merged in first: else the next append would bring back what was dropped.
        if self.copies_of(session_id):
            conflicts.merge_session_copies(self, session_id)
        return rewrite.replace_events(self, session_id, records, head_id)

    def rewind(
        self, session_id: str, to_event_id: str | None, *, expected_head: str | EllipsisType | None = ...
    ) -> None:
        """Make ``to_event_id`` the head (None: the empty conversation), with a head record in the log.

        The next append continues from it, ``load_events`` returns the branch
        ending at it, and the events after it stay in the log and in
        ``load_tree``. Every machine picks the same head after a sync merge
        (the rule is in :mod:`eventlog.chain`).

        :param expected_head: if given, rewind only if the head is still this event (None: the empty
            conversation); else raise :class:`SessionConflict`, writing nothing. For "undo the last turn"
            while other processes may append (an adapter's ``pop_item``).
        :raises SessionNotFound: if the session, or the event in it, does not exist.
        """
        if to_event_id is not None and not self._has_event(session_id, to_event_id):
            raise SessionNotFound(f"no event {to_event_id} in session {session_id}")
        record = Record(k=KIND_HEAD, id=new_id(), ts=utcnow(), parent=to_event_id)
        self._append(session_id, [record], expect_head=expected_head)

    def _has_event(self, session_id: str, event_id: str) -> bool:
        # Undoing the last turns names a recent event of the active branch: look there before reading the tree.
        if any(e.id == event_id for e in self.load_events(session_id, last=8)):
            return True
        return event_id in self.load_tree(session_id).parent_of

    def delete_session(self, session_id: str) -> None:
        """Move the session's log (and its conflict copies) to ``trash/deleted/``; see :mod:`sessions.deletion`."""
        deletion.delete_session(self, session_id)

    def restore_session(self, session_id: str) -> None:
        """Bring the most recently deleted log of the session back from the trash, whole."""
        deletion.restore_session(self, session_id)

    def list_trash(self) -> list[TrashedSession]:
        """The deleted sessions in the trash, most recently deleted first."""
        return deletion.list_trash(self)

    def purge_trash(self, older_than_secs: float) -> int:
        """Remove for good what has been in the trash longer than ``older_than_secs``; how many files."""
        return len(deletion.purge_trash(self, older_than_secs))

    @contextlib.contextmanager
    def session_lock(self, session_id: str) -> Iterator[None]:
        """Hold one session's append lock (merges hold it to exclude appends).

        :raises SessionBusy: if it was not free within ``lock_timeout``.
        """
        try:
            with self._logs.log(session_id).locked():
                yield
        except LogBusy as exc:
            raise SessionBusy(f"session {session_id} is busy: {exc}") from exc
