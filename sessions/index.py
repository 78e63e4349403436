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
import os
import threading
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import msgspec

from eventlog import UnsafeLogPath, _fs, atomic_write
from eventlog._lock import FileLock
from eventlog.reader import open_regular
from sessions._index_file import (
    DECODE_ERRORS,
    INDEX_FORMAT,
    ROW_START,
    Brief,
    Header,
    Listing,
    ListingLine,
    Row,
    Stamp,
    View,
    brief_decoder,
    decode_lines,
    decode_row,
    encoder,
    full_decoder,
    listing_decoder,
)
from sessions._mapping import placed
from sessions.errors import DamagedLogWarning, SessionBusy

__all__ = ["Brief", "Listing", "Row", "SessionIndex"]

OLD_FILES: Final = ("index.json", "index-logs.json")
"""What releases before this index kept; deleted on sight."""
_TAIL_MIN: Final = 1 << 20


class SessionIndex:
    """The index file of one store, as this process sees it.

    The store asks it for rows and hands it new ones; everything about the
    file (reading, saving, compaction, old formats) stays in here.
    """

    def __init__(self, path: Path, lock_path: Path) -> None:
        self.path = path
        self._lock = FileLock(lock_path, 0.0, lambda: SessionBusy(f"{lock_path} is held"))
        self._mutex = threading.RLock()
        self._view: View | None = None
        self._pending: dict[str, Row] = {}
        """Rows to save at the next :meth:`flush`."""
        self._listing: Listing | None = None
        self._cleaned = False
        self._warned = False

    # -- reading -------------------------------------------------------------------

    def _look(self) -> View | None:
        """The file as it is now (mapped again only if it changed)."""
        if not self._cleaned:
            self._cleaned = True
            for name in OLD_FILES:
                with contextlib.suppress(OSError):
                    _fs.unlink(self.path.parent / name)
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
                view = self._view = View(fd, st)
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
            return self._last_saved(view, session_id) if view is not None else None

    def _last_saved(self, view: View, session_id: str) -> Row | None:
        """The newest row of the session the file holds that can be read: the tail from its end, then the base."""
        needle = ROW_START + session_id.encode() + b'"'
        data = view.data
        end = view.size
        while (at := data.rfind(needle, max(view.base_end, 0), end)) >= 0:
            if at == 0 or data[at - 1 : at] == b"\n":
                row = decode_row(data, at)
                if row is not None:
                    return row
            end = at
        return view.search_base(session_id)

    def rows_near(self, directory: str | None, git_root: str | None) -> dict[str, Row]:
        """The newest rows of the sessions in ``directory`` or under ``git_root``, without decoding the others."""
        with self._mutex:
            view = self._look()
            ids: set[str] = {sid for sid, row in self._pending.items() if placed(row.session, directory, git_root)}
            saved = self._saved_near(view, directory, git_root)
            rows = {sid: row for sid, row in saved.items() if sid not in self._pending}
            for session_id in ids:
                rows[session_id] = self._pending[session_id]
            return rows

    def _saved_near(self, view: View | None, directory: str | None, git_root: str | None) -> dict[str, Row]:
        """The saved rows of one place, found once per look at the file (a running app asks again and again)."""
        if view is None:
            return {}
        cached = view.near.get((directory, git_root))
        if cached is not None:
            return cached
        starts: dict[str, int] = {}
        data = view.data
        for field, value in (("directory", directory), ("git_root", git_root)):
            if value is None:
                continue
            needle = b'"' + field.encode() + b'":' + encoder.encode(value)
            at = data.find(needle)
            while at >= 0:
                start = data.rfind(b"\n", 0, at) + 1
                if data[start : start + len(ROW_START)] == ROW_START:
                    stop = data.find(b'"', start + len(ROW_START))
                    session_id = bytes(data[start + len(ROW_START) : stop]).decode(errors="replace")
                    starts[session_id] = max(start, starts.get(session_id, -1))
                at = data.find(needle, at + len(needle))
        rows = {}
        for session_id, start in starts.items():
            # Every row of a session names its place (places never change), so the last line found
            # is its newest; only a damaged one sends us to the general lookup.
            row = decode_row(view.data, start) or self._last_saved(view, session_id)
            if row is not None and placed(row.session, directory, git_root):
                rows[session_id] = row
        view.near[(directory, git_root)] = rows
        return rows

    def briefs(self) -> dict[str, Brief]:
        """Every session's newest row, as listing needs it."""
        with self._mutex:
            view = self._look()
            briefs: dict[str, Brief] = {}
            if view is not None:
                if view.briefs is None:
                    lines = view.lines()
                    try:
                        view.briefs = {
                            b.session.id: b for b in decode_lines(lines, brief_decoder) if b.session and b.log
                        }
                    finally:
                        lines.release()
                briefs = dict(view.briefs)
            for session_id, row in self._pending.items():
                log = row.log
                briefs[session_id] = Brief(
                    row.session, Stamp(log.size, log.ino, log.ctime_ns, log.seen_ns, log.torn_bytes)
                )
            return briefs

    def ids(self) -> set[str]:
        """The ids of every session with a row that can be read (saved or pending).

        A line a power cut or a full disk tore is no row: its session counts as
        unindexed, so its log is read (counting the id alone hid such a session).
        """
        return set(self.briefs())

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
                    with contextlib.suppress(*DECODE_ERRORS):
                        view.listing = listing_decoder.decode(data[at : stop if stop >= 0 else view.size]).listing
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
            self._append(encoder.encode(ListingLine(listing)) + b"\n")

    def flush(self) -> None:
        """Append the rows put since the last flush, in one write. A store that refuses writes keeps none."""
        with self._mutex:
            if not self._pending:
                return
            data = b"".join(encoder.encode(row) + b"\n" for row in self._pending.values())
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
            _fs.write_all(fd, data)
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
            body = b"".join(encoder.encode(row) + b"\n" for row in sorted(rows, key=lambda r: r.session.id))
            header_size = len(encoder.encode(Header(index=INDEX_FORMAT, base="0" * 16))) + 1
            header = encoder.encode(Header(index=INDEX_FORMAT, base=f"{header_size + len(body):016d}")) + b"\n"
            listing = b""
            if self._listing is not None:
                listing = encoder.encode(ListingLine(self._listing)) + b"\n"
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
            for line in decode_lines(memoryview(data), full_decoder):
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
                    _fs.unlink(path)

    def close(self) -> None:
        self.flush()
        with self._mutex:
            self._drop_view()
        self._lock.close()
