"""The index: a disposable cache of each session's summary, in one file.

``ROOT/index.jsonl`` is JSON lines in two parts. The *base* (written by
compaction) is a header line and then one row per session, sorted by session
id, so a new process finds one session's row by binary search, reading a few
pages whatever the number of sessions. The *tail* after it holds rows appended
since, newest last; the newest row of a session wins. A row is the session as
``list_sessions`` returns it and the :class:`~eventlog.LogState` of its log,
which records the log bytes it covers (inode, size, ctime, last bytes): a row
is *current* while its log has that stamp, and one whose log grew is extended
by folding only the new bytes, as ZODB's ``FileStorage`` index is.

Saving rows appends lines (no lock, no sync: it is a cache, and a torn line is
skipped). Compaction rewrites the file, sorted, once the tail outgrows a
sixteenth of the base (at least 1 MiB), so its cost is shared by the appends
that made it necessary. The index may be stale, damaged or deleted at any time:
every answer still comes from the logs. A file of an older release
(``index.json``, ``index-logs.json``) is deleted, never read.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import threading
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Final, TypeVar

import msgspec

from eventlog import LogState, UnsafeLogPath, atomic_write
from eventlog._fs import write_all
from eventlog._lock import FileLock
from eventlog.reader import open_regular
from sessions.errors import DamagedLogWarning, SessionBusy
from sessions.models import StoredSession

__all__ = ["Brief", "Listing", "Row", "SessionIndex"]

INDEX_FORMAT: Final = 2
OLD_FILES: Final = ("index.json", "index-logs.json")
"""What releases before this index kept; deleted on sight."""
_TAIL_MIN: Final = 1 << 20
_RACY_NS: Final = 2_000_000_000
_ROW_START: Final = b'{"session":{"id":"'


class Row(msgspec.Struct, kw_only=True):
    """One line of the index: a session and the summary of its log."""

    session: StoredSession
    log: LogState


class _Stamp(msgspec.Struct):
    """The part of a summary that says which bytes it covers (the rest of the line is skipped)."""

    size: int = 0
    ino: int = 0
    ctime_ns: int = 0
    seen_ns: int = 0
    torn_bytes: int = 0


class Brief(msgspec.Struct, gc=False):
    """A row as listing reads it: the session, and the stamp of the log bytes it describes.

    Any line of the file decodes as one (both None for a header or listing line), so the whole
    file is one ``decode_lines`` call.
    """

    session: StoredSession | None = None
    log: _Stamp | None = None

    def covers(self, st: os.stat_result) -> bool:
        """True if the log (as ``stat`` saw it) holds exactly these bytes, and the stamp is not racy."""
        log = self.log
        return (
            log is not None
            and (st.st_ino, st.st_size, st.st_ctime_ns)
            == (
                log.ino,
                log.size + log.torn_bytes,
                log.ctime_ns,
            )
            and log.seen_ns - log.ctime_ns >= _RACY_NS
        )


class Listing(msgspec.Struct, kw_only=True):
    """A trusted listing of ``sessions/``: while the folder keeps this (inode, ctime), every log there has a row."""

    ino: int
    ctime_ns: int
    copies: dict[str, list[str]] = msgspec.field(default_factory=dict)
    """Sync conflict copies by session id, as names in ``sessions/``."""


class _Header(msgspec.Struct, kw_only=True):
    index: int
    base: str
    """The byte length of the sorted part, header included, as 16 digits (fixed width: written before it is known)."""


class _ListingLine(msgspec.Struct):
    listing: Listing


class _FullLine(msgspec.Struct, kw_only=True):
    """Any line of the file, decoded whole (compaction)."""

    session: StoredSession | None = None
    log: LogState | None = None


_encoder: Final = msgspec.json.Encoder()
_row_decoder: Final = msgspec.json.Decoder(Row)
_brief_decoder: Final = msgspec.json.Decoder(Brief)
_header_decoder: Final = msgspec.json.Decoder(_Header)
_listing_decoder: Final = msgspec.json.Decoder(_ListingLine)
_full_decoder: Final = msgspec.json.Decoder(_FullLine)
_ROW_ID: Final = re.compile(rb'^\{"session":\{"id":"([^"\\]*)"', re.MULTILINE)
_DECODE_ERRORS: Final = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)


class _View:
    """The file mapped read-only, with where its sorted part ends."""

    def __init__(self, fd: int, st: os.stat_result) -> None:
        self.ino, self.size = st.st_ino, st.st_size
        self.listing: Listing | bool | None = False
        """The newest listing line, None if there is none; False until looked for."""
        self.map = mmap.mmap(fd, st.st_size, prot=mmap.PROT_READ) if st.st_size else None
        self.base_start = self.base_end = 0
        if self.map is not None and self.map[: len(b'{"index":')] == b'{"index":':
            end = self.map.find(b"\n")
            with contextlib.suppress(*_DECODE_ERRORS, ValueError):
                header = _header_decoder.decode(self.map[:end])
                if header.index == INDEX_FORMAT and end < int(header.base) <= st.st_size:
                    self.base_start, self.base_end = end + 1, int(header.base)

    @property
    def data(self) -> mmap.mmap | bytes:
        return self.map if self.map is not None else b""

    def lines(self) -> memoryview:
        """The complete lines (a torn last line left out), without copying them."""
        data = self.data
        return memoryview(data)[: data.rfind(b"\n") + 1]

    def close(self) -> None:
        if self.map is not None:
            with contextlib.suppress(BufferError):
                self.map.close()


class SessionIndex:
    """The index file of one store, as this process sees it.

    The store asks it for rows and hands it new ones; everything about the
    file (reading, saving, compaction, old formats) stays in here.
    """

    def __init__(self, path: Path, lock_path: Path) -> None:
        self.path = path
        self._lock = FileLock(lock_path, 0.0, lambda: SessionBusy(f"{lock_path} is held"))
        self._mutex = threading.RLock()
        self._view: _View | None = None
        self._pending: dict[str, Row] = {}
        """Rows to save at the next :meth:`flush`."""
        self._listing: Listing | None = None
        self._cleaned = False
        self._warned = False

    # -- reading -------------------------------------------------------------------

    def _look(self) -> _View | None:
        """The file as it is now (mapped again only if it changed)."""
        if not self._cleaned:
            self._cleaned = True
            for name in OLD_FILES:
                with contextlib.suppress(OSError):
                    os.unlink(self.path.parent / name)
        try:
            fd = open_regular(self.path)
        except FileNotFoundError:
            self._drop_view()
            return None
        except UnsafeLogPath as exc:
            self._drop_view()
            if not self._warned:
                self._warned = True
                warnings.warn(f"{exc}; the index is not used, the logs answer", DamagedLogWarning, stacklevel=4)
            return None
        except OSError:
            return None  # unreadable: the logs answer
        try:
            st = os.fstat(fd)
            view = self._view
            if view is None or (view.ino, view.size) != (st.st_ino, st.st_size):
                self._drop_view()
                view = self._view = _View(fd, st)
            return view
        finally:
            os.close(fd)

    def _drop_view(self) -> None:
        if self._view is not None:
            self._view.close()
            self._view = None

    def row(self, session_id: str) -> Row | None:
        """The newest row of one session, or None: the tail searched from its end, then the sorted part."""
        with self._mutex:
            pending = self._pending.get(session_id)
            if pending is not None:
                return pending
            view = self._look()
            if view is None:
                return None
            needle = _ROW_START + session_id.encode() + b'"'
            data = view.data
            end = view.size
            while (at := data.rfind(needle, max(view.base_end, 0), end)) >= 0:
                if at == 0 or data[at - 1 : at] == b"\n":
                    row = _decode_row(data, at)
                    if row is not None:
                        return row
                end = at
            return self._search_base(view, session_id)

    def _search_base(self, view: _View, session_id: str) -> Row | None:
        data, key = view.data, session_id.encode()
        lo, hi = view.base_start, view.base_end
        while lo < hi:
            mid = (lo + hi) // 2
            start = data.rfind(b"\n", lo, mid) + 1 if mid > lo else lo
            start = max(start, lo)
            stop = data.find(b"\n", start, hi)
            if stop < 0:
                stop = hi
            id_start = start + len(_ROW_START)
            found = bytes(data[id_start : data.find(b'"', id_start, stop)])
            if found == key and data[start:id_start] == _ROW_START:
                return _decode_row(data, start)
            if found < key:
                lo = stop + 1
            else:
                hi = start
        return None

    def rows_near(self, directory: str | None, git_root: str | None) -> dict[str, Row]:
        """The newest rows of the sessions in ``directory`` or under ``git_root``, without decoding the others."""
        with self._mutex:
            view = self._look()
            ids: set[str] = {sid for sid, row in self._pending.items() if _placed(row.session, directory, git_root)}
            starts: dict[str, int] = {}
            if view is not None:
                data = view.data
                for field, value in (("directory", directory), ("git_root", git_root)):
                    if value is None:
                        continue
                    needle = b'"' + field.encode() + b'":' + _encoder.encode(value)
                    at = data.find(needle)
                    while at >= 0:
                        start = data.rfind(b"\n", 0, at) + 1
                        if data[start : start + len(_ROW_START)] == _ROW_START:
                            stop = data.find(b'"', start + len(_ROW_START))
                            session_id = bytes(data[start + len(_ROW_START) : stop]).decode(errors="replace")
                            starts[session_id] = max(start, starts.get(session_id, -1))
                        at = data.find(needle, at + len(needle))
            rows = {}
            for session_id in ids | set(starts):
                # Every row of a session names its place (places never change), so the last line found
                # is its newest; only a damaged one sends us to the general lookup.
                row = self._pending.get(session_id)
                if row is None and view is not None and session_id in starts:
                    row = _decode_row(view.data, starts[session_id]) or self.row(session_id)
                if row is not None and _placed(row.session, directory, git_root):
                    rows[session_id] = row
            return rows

    def briefs(self) -> dict[str, Brief]:
        """Every session's newest row, as listing needs it."""
        with self._mutex:
            view = self._look()
            briefs: dict[str, Brief] = {}
            if view is not None:
                lines = view.lines()
                try:
                    briefs = {b.session.id: b for b in _decode_lines(lines, _brief_decoder) if b.session and b.log}
                finally:
                    lines.release()
            for session_id, row in self._pending.items():
                log = row.log
                briefs[session_id] = Brief(
                    row.session, _Stamp(log.size, log.ino, log.ctime_ns, log.seen_ns, log.torn_bytes)
                )
            return briefs

    def ids(self) -> set[str]:
        """The ids of every session with a row (saved or pending), without decoding the rows."""
        with self._mutex:
            view = self._look()
            found = {m.decode(errors="replace") for m in _ROW_ID.findall(view.data)} if view is not None else set()
            return found | set(self._pending)

    def listing(self) -> Listing | None:
        """The newest trusted listing of ``sessions/`` saved, or None."""
        with self._mutex:
            if self._listing is not None:
                return self._listing
            view = self._look()
            if view is None:
                return None
            if view.listing is False:
                view.listing = None
                data, end = view.data, view.size
                while (at := data.rfind(b'{"listing":', 0, end)) >= 0:
                    stop = data.find(b"\n", at)
                    with contextlib.suppress(*_DECODE_ERRORS):
                        view.listing = _listing_decoder.decode(data[at : stop if stop >= 0 else view.size]).listing
                        break
                    end = at
            return view.listing if isinstance(view.listing, Listing) else None

    # -- writing -------------------------------------------------------------------

    def put(self, row: Row) -> None:
        """Remember a row, to be saved at the next :meth:`flush`."""
        log = msgspec.structs.replace(row.log, header=None)  # the session carries what the header says
        with self._mutex:
            self._pending[row.session.id] = Row(session=row.session, log=log)

    def note_listing(self, listing: Listing) -> None:
        """Save a trusted listing in which every log had a row (see :class:`Listing`)."""
        with self._mutex:
            self._listing = listing
            self._append(_encoder.encode(_ListingLine(listing)) + b"\n")

    def flush(self) -> None:
        """Append the rows put since the last flush, in one write. A store that refuses writes keeps none."""
        with self._mutex:
            if not self._pending:
                return
            data = b"".join(_encoder.encode(row) + b"\n" for row in self._pending.values())
            self._pending.clear()
            size = self._append(data)
            # The sorted part ends where the last compaction left it; a file without one has none.
            view = self._look()
            base_end = view.base_end if view is not None else 0
            if size and size - base_end > max(_TAIL_MIN, base_end // 16):
                self.compact()

    def _append(self, data: bytes) -> int:
        """Append lines; the file's size after, or 0 if the store refused."""
        try:
            fd = open_regular(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        except (OSError, ValueError):
            return 0  # a read-only store, or something hostile at the path: the logs still answer
        try:
            # A line cut short (a full disk, a crash) must not swallow the first row after it.
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data
            write_all(fd, data)
            return size + len(data)
        except OSError:
            return 0
        finally:
            os.close(fd)

    def compact(self, rows: Iterable[Row] | None = None) -> None:
        """Rewrite the file sorted, one row per session (``rows``, or the newest of each row saved)."""
        with self._mutex, contextlib.suppress(OSError, SessionBusy), self._lock.held():
            if rows is None:
                rows = self._newest_rows()
            body = b"".join(_encoder.encode(row) + b"\n" for row in sorted(rows, key=lambda r: r.session.id))
            header_size = len(_encoder.encode(_Header(index=INDEX_FORMAT, base="0" * 16))) + 1
            header = _encoder.encode(_Header(index=INDEX_FORMAT, base=f"{header_size + len(body):016d}")) + b"\n"
            listing = b""
            if self._listing is not None:
                listing = _encoder.encode(_ListingLine(self._listing)) + b"\n"
            self._drop_view()
            atomic_write(self.path, header + body + listing, durable=False)

    def _newest_rows(self) -> list[Row]:
        """Every session's newest row, in one pass over the file."""
        newest: dict[str, Row] = {}
        view = self._look()
        if view is not None:
            lines = view.lines()
            try:
                data = bytes(lines)  # decoded fact values keep a reference to their buffer: not the map
            finally:
                lines.release()
            for line in _decode_lines(memoryview(data), _full_decoder):
                if line.session is not None and line.log is not None:
                    newest[line.session.id] = Row(session=line.session, log=line.log)
        newest.update(self._pending)
        return list(newest.values())

    def clear(self) -> None:
        """Delete the file and forget every row (the next reads rebuild it from the logs)."""
        with self._mutex:
            self._pending.clear()
            self._listing = None
            self._drop_view()
            for path in (self.path, *(self.path.parent / name for name in OLD_FILES)):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    def close(self) -> None:
        self.flush()
        with self._mutex:
            self._drop_view()
        self._lock.close()


def _decode_row(data: mmap.mmap | bytes, at: int) -> Row | None:
    stop = data.find(b"\n", at)
    try:
        return _row_decoder.decode(data[at : stop if stop >= 0 else len(data)])
    except _DECODE_ERRORS:
        return None


_L = TypeVar("_L")


def _decode_lines(data: memoryview, decoder: msgspec.json.Decoder[_L]) -> list[_L]:
    """Decode every line; a damaged one is skipped, not the file."""
    try:
        return decoder.decode_lines(data)
    except _DECODE_ERRORS:
        lines = []
        for line in bytes(data).split(b"\n"):
            with contextlib.suppress(*_DECODE_ERRORS):
                if line.strip():
                    lines.append(decoder.decode(line))
        return lines


def _placed(session: StoredSession, directory: str | None, git_root: str | None) -> bool:
    return (directory is not None and session.directory == directory) or (
        git_root is not None and session.git_root == git_root
    )
