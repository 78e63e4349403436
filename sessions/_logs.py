"""Each session's log as this process holds it: the open :class:`~eventlog.LogFile`, its summary, and the
index rows those summaries become.

A summary is taken from the index when this process has none, extended by
reading only the bytes no summary covers, and handed back to the index once
the log has grown :data:`SAVE_LAG` bytes past the saved row (and, for the logs
this process wrote, at ``close``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import EllipsisType
from typing import Final

import msgspec

from eventlog import (
    FORMAT_VERSION,
    KIND_FACT,
    KIND_HEADER,
    FactRef,
    LogBusy,
    LogFile,
    LogState,
    Record,
    chain_records,
    order_events,
    utcnow,
)
from eventlog.durability import Durability
from eventlog.reader import open_regular, read_header, read_record_at, read_tail_events
from sessions import conflicts
from sessions._layout import Layout
from sessions._mapping import Conversation, Place, path_text, place_of, to_session
from sessions._resume import read_linear
from sessions.errors import DamagedLogWarning, SessionExists, SessionNotFound, translate_log_errors
from sessions.events import Compaction, EventTypes
from sessions.index import Row, SessionIndex
from sessions.models import StoredSession
from sessions.protocol import cut_window

__all__ = ["OPEN_LOGS", "SAVE_LAG", "SessionLogs"]

SAVE_LAG: Final = 1 << 16
"""Save a session's row once its log has grown this many bytes past the saved one (and at close)."""
OPEN_LOGS: Final = 128
"""Logs whose descriptors stay open between appends; the least recently used are closed beyond this."""

_json_encoder: Final = msgspec.json.Encoder()


class SessionLogs:
    """The logs of one store that this process has touched (at most :data:`OPEN_LOGS` held open)."""

    def __init__(self, layout: Layout, index: SessionIndex, *, lock_timeout: float, durability: Durability) -> None:
        self._layout = layout
        self._index = index
        self._lock_timeout = lock_timeout
        self._durability = durability
        self._logs: OrderedDict[str, LogFile] = OrderedDict()
        self._places: dict[str, tuple[int, Place]] = {}
        """Each log's header, by the inode it was read from: a log deleted and created again is another file."""
        self._written: set[str] = set()
        self._saved: dict[str, int] = {}
        """Log bytes each session's saved row covers, as far as this process knows."""
        self._mutex = threading.RLock()

    def log(self, session_id: str) -> LogFile:
        """The session's log (the id must have been checked)."""
        with self._mutex:
            log = self._logs.get(session_id)
            if log is not None:
                self._logs.move_to_end(session_id)
                return log
            log = LogFile(
                self._layout.log_path(session_id),
                self._layout.lock_path(session_id),
                lock_timeout=self._lock_timeout,
                durability=self._durability,
                trash_dir=self._layout.trash_dir,
            )
            self._logs[session_id] = log
            while len(self._logs) > OPEN_LOGS:
                _, old = self._logs.popitem(last=False)
                with contextlib.suppress(OSError, LogBusy):
                    old.close()
            return log

    def summary(
        self, session_id: str, row: Row | None = None, copies: Sequence[Path] = ()
    ) -> tuple[StoredSession, LogState]:
        """The session and its log's summary, brought up to date by reading only what no summary covers.

        :param copies: the sync tool's conflict copies beside the log: then the union answers.
        :raises SessionNotFound: if there is no log.
        """
        log = self.log(session_id)
        if row is None and not log.cached_state.size:
            row = self._index.row(session_id)
        if row is not None:
            self._saved.setdefault(session_id, row.log.size)
        try:
            state = translate_log_errors(lambda: log.state(known=row.log if row is not None else None), session_id)
        except FileNotFoundError:
            raise SessionNotFound(f"no session {session_id} in {self._layout.root}") from None
        place = self._place(session_id, state, row)
        if copies:
            union = conflicts.union_state(log.path, copies)
            if union is not None:
                return to_session(session_id, place, union, self.fact_reader(session_id)), union
        session = to_session(session_id, place, state, self.fact_reader(session_id))
        saved = self._saved.get(session_id)
        if saved is None or not 0 <= state.size - saved < SAVE_LAG:
            self._put(session_id, state, session)
        return session, state

    def create(
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
        """Create the log: its header and ``records`` in one write, durably; its row saved at once.

        :param forked_from: the session and event a fork continues (recorded in the header).
        :param labels: the session's labels (recorded in the header).
        :param created_at: the session's creation time, if not now (an import keeps the source's).
        :raises SessionExists: if the session already exists.
        """
        log = self.log(session_id)
        attributes: dict[str, object] = {"directory": path_text(directory), "git_root": path_text(git_root)}
        if forked_from is not None:
            attributes["forked_from"], attributes["fork_event_id"] = forked_from
        if labels:
            attributes["labels"] = dict(labels)
        header = Record(
            k=KIND_HEADER,
            id=session_id,
            ts=(created_at or utcnow()).astimezone(dt.UTC),
            v=FORMAT_VERSION,
            data=msgspec.Raw(_json_encoder.encode(attributes)),
        )
        try:
            state = translate_log_errors(lambda: log.create(header, records), session_id)
        except FileExistsError:
            raise SessionExists(f"session {session_id} already exists in {self._layout.root}") from None
        place = place_of(header)
        self._places[session_id] = (state.ino, place)
        session = to_session(session_id, place, state, self.fact_reader(session_id))
        self._put(session_id, state, session)
        self._index.flush()
        return session

    def append(self, session_id: str, records: list[Record], *, expect_head: str | EllipsisType | None = ...) -> None:
        """Append ``records`` as one batch (see :meth:`eventlog.LogFile.append`, and its ``expect_head``).

        :raises SessionNotFound: if there is no log.
        """
        log = self.log(session_id)
        if not log.cached_state.size:
            row = self._index.row(session_id)
            if row is not None:
                log.adopt(row.log)  # extended, never trusted blindly: the append checks it against the file
                self._saved.setdefault(session_id, row.log.size)
        try:
            state = translate_log_errors(lambda: log.append(records, expect_head=expect_head), session_id)
        except FileNotFoundError:
            raise SessionNotFound(f"no session {session_id} in {self._layout.root}; create it first") from None
        with self._mutex:
            self._written.add(session_id)
            saved = self._saved.setdefault(session_id, state.size)
        if state.size - saved >= SAVE_LAG:
            self._put(session_id, state)
            self._index.flush()

    def adopt(self, session_id: str, path: Path, state: LogState) -> None:
        """Hand a summary folded by a read to the log, if the file still holds exactly those bytes."""
        with contextlib.suppress(OSError, ValueError):
            fd = open_regular(path)
            try:
                st = os.fstat(fd)
                if st.st_size == state.size and state.still_ends(fd):
                    state.ino, state.ctime_ns, state.seen_ns = st.st_ino, st.st_ctime_ns, time.time_ns()
                    self.log(session_id).adopt(state)
                    if state.header is not None:
                        self._places[session_id] = (state.ino, place_of(state.header))
            finally:
                os.close(fd)

    def window(self, session_id: str, last: int | None, from_compaction: bool, copies: Sequence[Path]) -> list[Record]:
        """The records of the active branch's window (see ``LocalSessionService.load_events``)."""
        if last is not None and last <= 0:
            self.summary(session_id, copies=copies)  # a missing session is still an error
            return []
        if last is not None or from_compaction:
            _, state = self.summary(session_id, copies=copies)
            if not state.damaged and not copies:
                stop = _is_compaction if from_compaction else None
                path = self._layout.log_path(session_id)
                # A straight log is read back as one chain; a rewound one by parent links from its head,
                # which only its summary (of the whole log) can name.
                head = ... if state.linear else state.head_id
                tail: list[Record] | None = translate_log_errors(
                    lambda: read_tail_events(path, last=last, stop=stop, head=head), session_id
                )
                if tail is not None:
                    return tail
        branch = self.branch(session_id, copies)
        return cut_window(branch, last, from_compaction, lambda record: record.type or "")

    def branch(self, session_id: str, copies: Sequence[Path]) -> list[Record]:
        """The active branch, read whole (with the conflict copies, if any); damaged lines skipped with a warning."""
        path = self._layout.log_path(session_id)
        try:
            read = translate_log_errors(lambda: conflicts.read_with_copies(path, copies), session_id)
        except FileNotFoundError:
            raise SessionNotFound(f"no session {session_id} in {self._layout.root}") from None
        if read.damaged or read.torn:
            offsets = [d.offset for d in read.damaged] + ([read.torn.offset] if read.torn else [])
            warnings.warn(
                f"{path}: skipped {len(offsets)} damaged line(s) at byte offset(s) {offsets[:10]}; "
                f"nothing was deleted; run `sessions verify {session_id}` for details",
                DamagedLogWarning,
                stacklevel=4,
            )
        return order_events(chain_records(read.records))

    def conversation(
        self, session_id: str, last: int | None, from_compaction: bool, copies: Sequence[Path], types: EventTypes
    ) -> Conversation:
        """The events (of a window, or all) typed as ``types``, read in one pass where the log allows it."""
        known = self._known_state(session_id)
        if last is None and not from_compaction and not copies and (known.linear or not known.size):
            path = self._layout.log_path(session_id)
            try:
                linear = translate_log_errors(lambda: read_linear(path, types, known), session_id)
            except FileNotFoundError:
                raise SessionNotFound(f"no session {session_id} in {self._layout.root}") from None
            if linear is not None:
                self.adopt(session_id, path, linear.state)
                head = linear.head
                return Conversation(linear.events, head.id if head else None, head.ts if head else None)
        records = self.window(session_id, last, from_compaction, copies)
        head = records[-1] if records else None
        return Conversation(
            [types.deserialize(r.type or "", r.data) for r in records],
            head.id if head else None,
            head.ts if head else None,
        )

    def _known_state(self, session_id: str) -> LogState:
        """The newest summary of the log this process has, or the index's: a hint, which may be stale.

        Says whether the log is a tree (then a one-pass read would only give up half way), and lets a
        one-pass read skip summarizing bytes it already covers.
        """
        state = self.log(session_id).cached_state
        if not state.size:
            row = self._index.row(session_id)
            if row is not None:
                return row.log
        return state

    def fact_reader(self, session_id: str) -> Callable[[FactRef], msgspec.Raw | None]:
        """Reads a fact value the summary keeps by offset: one bounded read of its line."""
        path = self._layout.log_path(session_id)

        def read(ref: FactRef) -> msgspec.Raw | None:
            record = read_record_at(path, ref.offset, ref.length)
            return record.data if record is not None and record.k == KIND_FACT else None

        return read

    def close(self) -> None:
        """Hand the index the rows of the logs written, and close every descriptor held."""
        with self._mutex:
            for session_id in self._written:
                log = self._logs.get(session_id)
                if log is not None and log.cached_state.size and self._saved.get(session_id) != log.cached_state.size:
                    with contextlib.suppress(OSError, ValueError):
                        self._put(session_id, log.cached_state)
            self._written.clear()
            self.forget()

    def forget(self) -> None:
        """Close every descriptor held and forget every summary (the next calls start afresh)."""
        with self._mutex:
            for log in self._logs.values():
                with contextlib.suppress(OSError, LogBusy):
                    log.close()
            self._logs.clear()
            self._places.clear()
            self._saved.clear()

    def _put(self, session_id: str, state: LogState, session: StoredSession | None = None) -> None:
        """Hand the index a new row for the session (saved at its next flush)."""
        if session is None:
            session = to_session(session_id, self._place(session_id, state, None), state, self.fact_reader(session_id))
        self._index.put(Row(session=session, log=state))
        self._saved[session_id] = state.size

    def _place(self, session_id: str, state: LogState, row: Row | None) -> Place:
        cached = self._places.get(session_id)
        if cached is not None and cached[0] == state.ino:
            return cached[1]
        if state.header is not None:
            place = place_of(state.header)
        else:
            row = row or self._index.row(session_id)
            if row is not None and row.log.ino == state.ino:
                session = row.session
                place = Place(
                    session.directory,
                    session.git_root,
                    session.created_at,
                    session.forked_from,
                    session.fork_event_id,
                    session.labels,
                )
            else:  # a summary without its header: read the header line
                header = read_header(self._layout.log_path(session_id))
                place = place_of(header) if header is not None else Place(None, None, utcnow())
        self._places[session_id] = (state.ino, place)
        return place


def _is_compaction(record: Record) -> bool:
    return record.type == Compaction.TYPE
