"""The file-based session service (the protocol it implements is in :mod:`sessions.protocol`).

A store is a folder::

    ROOT/sessions/<session id>.jsonl   one log per session: the only source of truth
    ROOT/index.json                    disposable cache: one row per session, for listing and finding
    ROOT/index-logs.json               disposable cache of each session's full summary
    ROOT/locks/                        disposable lock files
    ROOT/trash/                        torn tails and replaced copies, kept for the user

See ``docs/FORMAT.md`` for the log format.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final, Self, TypeVar

import msgspec

from eventlog import (
    FORMAT_VERSION,
    KIND_EVENT,
    KIND_FACT,
    KIND_HEADER,
    LogBusy,
    LogFile,
    LogState,
    LogWriteError,
    Record,
    StaleHead,
    UnsafeLogPath,
    ensure_private_dir,
    new_id,
    order_events,
    stream_linear_events,
    utcnow,
    verify_log,
)
from eventlog.durability import check_durability
from sessions._mapping import Conversation, check_event, event_record, require_str, stored_event, typed_event
from sessions._rows import FACT_ARCHIVED, FACT_SERVER_SESSION, Row, loads_str, read_fact, row_of
from sessions.errors import (
    DamagedLogWarning,
    SessionBusy,
    SessionConflict,
    SessionExists,
    SessionNotFound,
    SessionWriteError,
    UnsafeStorePath,
)
from sessions.events import deserialize_event
from sessions.index import IndexEntry, SessionIndex
from sessions.models import StoredEvent, StoredSession, VerifyReport
from sessions.protocol import SESSION_ID, SessionService, check_session_id
from sessions.sync import (
    conflict_copies,
    conflict_copy_findings,
    merge_before_append,
    note_listing,
    read_with_conflict_copies,
    with_conflict_copies,
)
from sessions.tree import SessionTree, read_session_tree

__all__ = ["Conversation", "LocalSessionService", "SessionService", "check_session_id"]

LOG_SUFFIX: Final = ".jsonl"
FACT_METADATA: Final = "metadata"
LISTING_TRUSTED_AFTER_NS: Final = 2_000_000_000
"""A listing of ``ROOT/sessions`` is reused while the folder's mtime stays put, once it is this old."""
INDEX_SAVE_LAG: Final = 1 << 20
"""Save the index once a session's log has grown this many bytes past it."""

_LOG_NAME_LENGTH: Final = 36 + len(LOG_SUFFIX)
_T = TypeVar("_T")


_json_encoder: Final = msgspec.json.Encoder()


class LocalSessionService:
    """Sessions as append-only JSON-lines logs under ``root`` (see the module docs).

    Safe to share between threads, and between processes on the same store.
    """

    def __init__(self, root: Path, *, lock_timeout: float = 2.0, durability: str = "fsync") -> None:
        self.root = root
        self.lock_timeout = lock_timeout
        self.durability = check_durability(durability)
        self.sessions_dir = root / "sessions"
        self.locks_dir = root / "locks"
        self.trash_dir = root / "trash"
        self._index = SessionIndex(root / "index-logs.json", self.locks_dir / "index.lock", root / "index.json")
        self._logs: dict[str, LogFile] = {}
        self._logs_mutex = threading.Lock()
        self._listing: tuple[int, frozenset[str]] | None = None

    @classmethod
    def open(cls, root: str | os.PathLike[str], *, lock_timeout: float = 2.0, durability: str = "fsync") -> Self:
        """Open the store at ``root``, creating it (mode 0700) if missing.

        :param lock_timeout: seconds a writer waits for a session's lock before :class:`SessionBusy`.
        :param durability: ``"fsync"`` (survives power loss) or ``"flush"`` (survives a process crash).
        """
        path = Path(root).expanduser()
        for directory in (path, path / "sessions", path / "locks"):
            try:
                ensure_private_dir(directory)
            except (NotADirectoryError, FileExistsError) as exc:
                raise UnsafeStorePath(f"{directory} exists but is not a directory; pick another store path") from exc
        return cls(path, lock_timeout=lock_timeout, durability=durability)

    def close(self) -> None:
        """Save the index if it changed. The service needs no other cleanup."""
        with self._index.mutex:
            if self._index.dirty:
                self._index.save(durable=self.durability == "fsync")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, durability={self.durability!r})"

    # -- paths and logs ----------------------------------------------------------------

    def log_path(self, session_id: str) -> Path:
        """The log file of a session (which may not exist yet).

        :raises ValueError: if ``session_id`` is not a canonical UUID string.
        """
        return self.sessions_dir / f"{check_session_id(session_id)}{LOG_SUFFIX}"

    def _log(self, session_id: str) -> LogFile:
        log = self._logs.get(session_id)
        if log is not None:  # the common case, without re-checking the id and re-building paths
            return log
        path = self.log_path(session_id)
        with self._logs_mutex:
            log = self._logs.get(session_id)
            if log is None:
                log = LogFile(
                    path,
                    self.locks_dir / f"{session_id}.lock",
                    lock_timeout=self.lock_timeout,
                    durability=self.durability,
                    trash_dir=self.trash_dir,
                )
                self._logs[session_id] = log
            return log

    def _entry(self, session_id: str) -> IndexEntry:
        """The session's index entry, brought up to date with its log."""
        log = self._log(session_id)
        with self._index.mutex:
            entry = self._index.entries.get(session_id)
        try:
            state = _translate(lambda: log.state(known=entry.log if entry else None), session_id)
        except FileNotFoundError:
            raise SessionNotFound(f"no session {session_id} in {self.root}") from None
        # Conflict copies from a sync tool: the union is what every reader sees (sessions/sync.py).
        return with_conflict_copies(self._remember(session_id, state, entry), log.path)

    def _remember(self, session_id: str, state: LogState, entry: IndexEntry | None) -> IndexEntry:
        with self._index.mutex:
            if entry is not None and entry.log is state:
                return entry
            if entry is None or entry.log.header is not state.header:
                entry = IndexEntry.from_state(state)
            else:
                entry = IndexEntry(
                    directory=entry.directory, git_root=entry.git_root, created_at=entry.created_at, log=state
                )
            self._index.put(session_id, entry)
            if self._index.lag(session_id) > INDEX_SAVE_LAG:
                self._index.save(durable=self.durability == "fsync")
            return entry

    def _all_entries(self, only: set[str] | None = None) -> Iterator[tuple[str, IndexEntry]]:
        """Every session's entry (or those in ``only``), up to date; unreadable logs are skipped with a warning."""
        with self._index.mutex:
            self._index.load()
        present = set(self._session_ids_on_disk())
        with self._index.mutex:
            for gone in set(self._index.entries) - present:
                del self._index.entries[gone]
                self._index.dirty = True
            entries = self._index.entries.snapshot()
        # One listing of conflict copies and str paths: per-session Path objects and
        # copy lookups were most of listing 10,000 current sessions (docs/BENCHMARKS.md).
        copies = conflict_copies(self.sessions_dir)
        folder = os.fspath(self.sessions_dir)
        for session_id in sorted(present if only is None else present & only):
            entry = entries.get(session_id)
            if entry is not None:
                try:
                    if entry.is_current(os.lstat(os.path.join(folder, f"{session_id}{LOG_SUFFIX}"))):
                        if session_id in copies:
                            entry = with_conflict_copies(entry, self.sessions_dir / f"{session_id}{LOG_SUFFIX}")
                        yield session_id, entry
                        continue
                except FileNotFoundError:
                    continue
            try:
                yield session_id, self._entry(session_id)
            except SessionNotFound:
                continue
            except UnsafeStorePath as exc:
                warnings.warn(str(exc), DamagedLogWarning, stacklevel=3)

    def _session_ids_on_disk(self) -> frozenset[str]:
        """The ids of the logs in ``ROOT/sessions``, listed again only when the folder changed.

        One listing serves the conflict copies too (:func:`sessions.sync.note_listing`), and a
        trusted one is saved with the index rows so a new process need not list the folder.
        """
        mtime_ns = os.stat(self.sessions_dir).st_mtime_ns
        listing = self._listing
        if listing is not None and listing[0] == mtime_ns:
            return listing[1]
        with self._index.mutex:
            saved = self._index.rows.listing
        if saved is not None and saved[0] == mtime_ns:
            note_listing(self.sessions_dir, mtime_ns, time.time_ns(), saved[2])
            self._listing = (mtime_ns, saved[1])
            return saved[1]
        names = os.listdir(self.sessions_dir)
        now = time.time_ns()
        note_listing(self.sessions_dir, mtime_ns, now, names)
        ids = frozenset(
            name[: -len(LOG_SUFFIX)]
            for name in names
            if name.endswith(LOG_SUFFIX) and SESSION_ID.fullmatch(name[: -len(LOG_SUFFIX)])
        )
        # A log added within the folder's mtime tick would not move it (git's "racily clean"),
        # so only a folder that has not changed for a while is trusted to mean "same logs".
        self._listing = None
        if now - mtime_ns > LISTING_TRUSTED_AFTER_NS:
            self._listing = (mtime_ns, ids)
            others = tuple(name for name in names if len(name) != _LOG_NAME_LENGTH or not name.endswith(LOG_SUFFIX))
            with self._index.mutex:
                self._index.note_listing(mtime_ns, ids, others)
        return ids

    def _candidates_from_rows(
        self, directory: str | None, git_root: str | None
    ) -> tuple[set[str], dict[str, Row]] | None:
        """A new process's candidates, if the folder is as its saved listing says: no other rows are decoded.

        :returns: the ids to check and the rows placed here, or None to take the general way.
        """
        mtime_ns = os.stat(self.sessions_dir).st_mtime_ns
        if self._listing is not None and self._listing[0] == mtime_ns:
            return None  # listed already: every row is decoded, the general way costs no more
        with self._index.mutex:
            saved = self._index.rows.saved_listing(mtime_ns)
            here = self._index.rows.in_place(directory, git_root) if saved is not None else None
        if saved is None or here is None:
            return None
        note_listing(self.sessions_dir, mtime_ns, time.time_ns(), saved.others)
        candidates = set(here).difference(saved.gone)
        candidates.update(saved.unindexed)  # logs without a row: their place is not known
        return candidates, here

    def _candidates(self, directory: str | None, git_root: str | None) -> tuple[set[str], dict[str, Row]]:
        """The ids to check for :meth:`find_resumable`, and every row."""
        present = self._session_ids_on_disk()
        index = self._index
        with index.mutex:
            rows, entries = index.rows, index.entries
            if not present.difference(rows.by_id).isdisjoint(present.difference(entries)):
                index.load()  # sessions without a row: their summaries may place them elsewhere
            rows_by_id = dict(rows.by_id)
            # Sessions the index does not know yet, and those it places here (without decoding the others).
            candidates = set(present.difference(rows_by_id).difference(entries))
            placed = set(rows.in_place(directory, git_root) or ()) | entries.placed(directory, git_root)
            candidates |= present.intersection(placed)
        return candidates, rows_by_id

    def _row_session(self, session_id: str, row: Row | None, folder: str) -> StoredSession | None:
        """The session from its index row if the row covers its log as it is (one lstat), else None.

        :raises FileNotFoundError: if the log is gone.
        """
        if row is None or not row.is_current(os.lstat(os.path.join(folder, f"{session_id}{LOG_SUFFIX}"))):
            return None
        return row.session(session_id, folder)

    def _current_entry(self, session_id: str) -> IndexEntry:
        """The session's entry: the index's if it covers the log as it is (one lstat), else refreshed."""
        with self._index.mutex:
            entry = self._index.entries.get(session_id)
        if entry is not None:
            path = self.sessions_dir / f"{session_id}{LOG_SUFFIX}"
            try:
                if entry.is_current(os.lstat(path)):
                    return with_conflict_copies(entry, path)
            except FileNotFoundError:
                raise SessionNotFound(f"no session {session_id} in {self.root}") from None
        return self._entry(session_id)

    def _save_index_if_dirty(self) -> None:
        with self._index.mutex:
            if self._index.dirty:
                self._index.save(durable=self.durability == "fsync")

    # -- sessions ---------------------------------------------------------------------

    def create_session(self, session_id: str, directory: str | None, git_root: str | None) -> StoredSession:
        """Create a session's log (its header line), durably.

        :raises SessionExists: if the session already exists.
        """
        log = self._log(session_id)
        header = Record(
            k=KIND_HEADER,
            id=session_id,
            ts=utcnow(),
            v=FORMAT_VERSION,
            data=msgspec.Raw(_json_encoder.encode({"directory": directory, "git_root": git_root})),
        )
        try:
            state = _translate(lambda: log.create(header), session_id)
        except FileExistsError:
            raise SessionExists(f"session {session_id} already exists in {self.root}") from None
        return _to_session(session_id, self._remember(session_id, state, None), self.sessions_dir)

    def get_session(self, session_id: str) -> StoredSession | None:
        """The session, or None if it does not exist."""
        try:
            return _to_session(session_id, self._entry(session_id), self.sessions_dir)
        except SessionNotFound:
            return None

    def find_resumable(self, directory: str | None, git_root: str | None, max_age_secs: float) -> StoredSession | None:
        """The most recently updated session to continue, or None.

        A session matches if its directory equals ``directory`` or its git root
        equals ``git_root`` (None matches nothing), it is not archived, and it
        was updated strictly after ``now - max_age_secs``. Ties on ``updated_at``
        go to the larger session id (UUIDv7: the later created). Changes nothing
        but the index cache.
        """
        if directory is None and git_root is None:
            return None
        cutoff = utcnow() - dt.timedelta(seconds=max_age_secs)
        index = self._index
        with index.mutex:
            index.load_rows()
        candidates, rows_by_id = self._candidates_from_rows(directory, git_root) or self._candidates(
            directory, git_root
        )
        copies = conflict_copies(self.sessions_dir)
        folder = os.fspath(self.sessions_dir)
        best: StoredSession | None = None
        for session_id in candidates:
            try:
                row = None if session_id in copies else rows_by_id.get(session_id)
                session = self._row_session(session_id, row, folder)
                if session is None:
                    with index.mutex:
                        index.load()
                    session = _to_session(session_id, self._current_entry(session_id), self.sessions_dir)
                    with index.mutex:  # a session answered without a row: the save gives it one
                        index.rows_dirty |= session_id not in rows_by_id and session_id not in copies
            except (FileNotFoundError, SessionNotFound, UnsafeStorePath):
                continue
            if not (
                (directory is not None and session.directory == directory)
                or (git_root is not None and session.git_root == git_root)
            ):
                continue
            if session.archived_at is not None or session.updated_at <= cutoff:
                continue
            if best is None or (session.updated_at, session.id) > (best.updated_at, best.id):
                best = session
        self._save_index_if_dirty()
        return best

    def list_sessions(self, *, include_archived: bool = False) -> list[StoredSession]:
        """Every session, most recently updated first (ties: larger id first)."""
        with self._index.mutex:
            self._index.load_rows()
        present = self._session_ids_on_disk()
        copies = conflict_copies(self.sessions_dir)
        with self._index.mutex:
            rows = dict(self._index.rows.by_id)
            if not present.issuperset(rows):
                self._index.rows.drop(set(rows).difference(present))
                self._index.rows_dirty = True
        folder = os.fspath(self.sessions_dir)
        sessions: list[StoredSession] = []
        stale: set[str] = set()
        for session_id in present:
            try:
                session = None if session_id in copies else self._row_session(session_id, rows.get(session_id), folder)
            except FileNotFoundError:
                continue
            if session is None:
                stale.add(session_id)
            else:
                sessions.append(session)
        if stale:
            sessions += [_to_session(sid, entry, self.sessions_dir) for sid, entry in self._all_entries(stale)]
            with self._index.mutex:
                self._index.rows_dirty |= not stale.issubset(rows)
        if not include_archived:
            sessions = [s for s in sessions if s.archived_at is None]
        sessions.sort(key=lambda s: (s.updated_at, s.id), reverse=True)
        self._save_index_if_dirty()
        return sessions

    # -- events -----------------------------------------------------------------------

    def load_events(self, session_id: str) -> list[StoredEvent]:
        """The session's events, oldest first, along the active branch (see ``eventlog.chain``).

        Lines that cannot be read are skipped with a :class:`DamagedLogWarning`; never raises for content.
        """
        records = self._read_events(session_id)
        return [stored_event(session_id, r) for r in records]

    def load_conversation(self, session_id: str) -> Conversation:
        """The session's events, typed, with the last one's id and time: what a resume needs.

        Same answer as :meth:`load_events` typed with :func:`deserialize_event`, in
        one pass: a clean, linear log without conflict copies (the common case)
        is streamed and typed a chunk at a time, so the raw file is never held
        whole; any other log goes the tolerant way of :meth:`load_events`.
        """
        path = self.log_path(session_id)
        if not conflict_copies(self.sessions_dir).get(session_id):
            try:
                linear = _translate(lambda: stream_linear_events(path, typed_event), session_id)
            except FileNotFoundError:
                raise SessionNotFound(f"no session {session_id} in {self.root}") from None
            if linear is not None:
                head = linear.head
                return Conversation(linear.events, head.id if head else None, head.ts if head else None)
        stored = self.load_events(session_id)
        events = [deserialize_event(e.event_type, e.event_data) for e in stored]
        return Conversation(events, stored[-1].id if stored else None, stored[-1].created_at if stored else None)

    def _read_events(self, session_id: str) -> list[Record]:
        path = self.log_path(session_id)
        try:
            read = _translate(lambda: read_with_conflict_copies(path), session_id)
        except FileNotFoundError:
            raise SessionNotFound(f"no session {session_id} in {self.root}") from None
        if read.damaged or read.torn:
            offsets = [d.offset for d in read.damaged] + ([read.torn.offset] if read.torn else [])
            warnings.warn(
                f"{path}: skipped {len(offsets)} damaged line(s) at byte offset(s) {offsets[:10]}; "
                f"nothing was deleted; run `sessions verify {session_id}` for details",
                DamagedLogWarning,
                stacklevel=3,
            )
        return order_events([r for r in read.records if r.k == KIND_EVENT])

    def load_tree(self, session_id: str) -> SessionTree:
        """Every event of the session with every branch and the active head (``load_events`` is its active branch).

        :raises SessionNotFound: if the session does not exist.
        """
        path = self.log_path(session_id)
        try:
            return _translate(lambda: read_session_tree(session_id, path), session_id)
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
        records = [event_record(session_id, event) for event in events]
        if records:
            self._append(session_id, records)

    def _append(self, session_id: str, records: list[Record]) -> None:
        log = self._log(session_id)
        # Fold in a sync tool's conflict copies first, so the batch continues the head readers saw.
        if conflict_copies(self.sessions_dir).get(session_id):
            merge_before_append(self, session_id)
        try:
            state = _translate(lambda: log.append(records), session_id)
        except FileNotFoundError:
            raise SessionNotFound(f"no session {session_id} in {self.root}; create it first") from None
        with self._index.mutex:
            entry = self._index.entries.get(session_id)
        self._remember(session_id, state, entry)

    def _append_fact(self, session_id: str, name: str, value: object, key: str | None = None) -> None:
        data = msgspec.Raw(_json_encoder.encode(value))
        self._append(session_id, [Record(k=KIND_FACT, id=new_id(), ts=utcnow(), type=name, key=key, data=data)])

    # -- session facts ----------------------------------------------------------------

    def update_server_session_id(self, session_id: str, server_session_id: str) -> None:
        """Record the remote session id. Does not change ``updated_at``."""
        self._append_fact(session_id, FACT_SERVER_SESSION, require_str(server_session_id, "server_session_id"))

    def archive(self, session_id: str) -> None:
        """Mark the session archived (``archived_at`` = now). Nothing is deleted."""
        self._append_fact(session_id, FACT_ARCHIVED, True)
        self._save_index_if_dirty()

    def unarchive(self, session_id: str) -> None:
        """Clear the archive flag."""
        self._append_fact(session_id, FACT_ARCHIVED, False)
        self._save_index_if_dirty()

    def get_metadata(self, session_id: str, key: str) -> str | None:
        """The value stored under ``key``, or None."""
        entry = self._entry(session_id)
        ref = entry.log.fact(FACT_METADATA, require_str(key, "key"))
        if ref is None:
            return None
        raw = ref.value if ref.value is not None else read_fact(self.log_path(session_id), ref)
        # A value that is not a string (a newer version's, or edited by hand) reads as missing, not as a crash.
        return loads_str(raw) if raw is not None else None

    def set_metadata(self, session_id: str, key: str, value: str) -> None:
        """Store ``value`` under ``key`` (the newest write wins)."""
        self._append_fact(session_id, FACT_METADATA, require_str(value, "value"), key=require_str(key, "key"))

    # -- maintenance ------------------------------------------------------------------

    def session_ids(self) -> list[str]:
        """The id of every session log in the store, sorted, archived ones included."""
        return sorted(self._session_ids_on_disk())

    def drop_index(self) -> None:
        """Forget the index, on disk and in memory, so the next reads rebuild it from the logs."""
        with self._index.mutex:
            for path in (self._index.path, self._index.rows_path):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            self._index.entries.clear()
            self._index.rows.drop(set(self._index.rows.by_id))
            self._index.rows.listing = None
            self._index.dirty = True
        with self._logs_mutex:
            self._logs.clear()

    def repair_torn_tail(self, session_id: str) -> int:
        """Cut off a torn tail now, as the next append would; the bytes are saved to ``trash/`` first.

        :returns: how many bytes were cut off (0 if the log ends with a complete line).
        :raises SessionNotFound: if the session does not exist.
        :raises SessionBusy: if a writer held the lock for longer than ``lock_timeout``.
        """
        log = self._log(session_id)
        try:
            torn = _translate(lambda: log.state().torn_bytes, session_id)
            if not torn:
                return 0
            state = _translate(log.repair, session_id)
        except FileNotFoundError:
            raise SessionNotFound(f"no session {session_id} in {self.root}") from None
        with self._index.mutex:
            entry = self._index.entries.get(session_id)
        self._remember(session_id, state, entry)
        return torn

    # -- checking ---------------------------------------------------------------------

    def verify(self, session_id: str) -> VerifyReport:
        """Check a session's log: damaged lines, torn tail, duplicates, gaps, forks, unknown types."""
        path = self.log_path(session_id)
        try:
            report = _translate(lambda: verify_log(path, check_event), session_id)
        except FileNotFoundError:
            raise SessionNotFound(f"no session {session_id} in {self.root}") from None
        unknown: dict[str, int] = {}
        for finding in report.findings:
            if finding.kind == "unknown_type":
                name = finding.detail.split("'")[1]
                unknown[name] = unknown.get(name, 0) + 1
        return VerifyReport(
            session_id=session_id,
            path=report.path,
            size=report.size,
            events=report.events,
            heads=report.heads,
            findings=report.findings + conflict_copy_findings(path),
            unknown_types=unknown,
        )


def _translate(call: Callable[[], _T], session_id: str) -> _T:
    """Run a log-layer call, raising its errors as the session errors callers know."""
    try:
        return call()
    except StaleHead as exc:
        raise SessionConflict(
            f"session {session_id} was changed by another writer (its head is now {exc.actual}); "
            "nothing was written: resume the session again, then retry"
        ) from exc
    except LogBusy as exc:
        raise SessionBusy(f"session {session_id} is busy: {exc}") from exc
    except LogWriteError as exc:
        raise SessionWriteError(exc.errno, f"session {session_id}: {exc}") from exc
    except UnsafeLogPath as exc:
        raise UnsafeStorePath(str(exc)) from exc


def _to_session(session_id: str, entry: IndexEntry, sessions_dir: Path) -> StoredSession:
    row = row_of(entry.directory, entry.git_root, entry.created_at, entry.log)
    return row.session(session_id, os.fspath(sessions_dir))
