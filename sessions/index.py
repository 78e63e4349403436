"""The index: a disposable cache of each session's summary, in one append-only file.

``ROOT/index.jsonl`` holds one line per saved summary: the session as
``list_sessions`` returns it, and the :class:`~eventlog.LogState` of its log,
which records the log bytes it covers (inode, size, ctime, last bytes). The
newest line of a session wins. A summary is *current* when its log still has
that stamp; one whose log grew is extended by folding only the new bytes, as
ZODB's ``FileStorage`` index is: nothing is ever read twice.

Saving a summary appends one line (no lock, no sync: it is a cache, and a torn
line is skipped); nothing rewrites the file except compaction, which runs when
superseded lines outnumber the live ones, so its cost is shared by the appends
that made it necessary. The index may be stale, damaged or deleted at any
time: every answer still comes from the logs. A file of another format (an
older release's ``index.json``) is deleted and rebuilt, never read.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import msgspec

from eventlog import LogState, UnsafeLogPath, atomic_write
from eventlog._fs import write_all
from eventlog._lock import FileLock
from eventlog.reader import open_regular, read_fd
from sessions.errors import DamagedLogWarning, SessionBusy
from sessions.models import StoredSession

__all__ = ["Row", "SessionIndex"]

OLD_FILES: Final = ("index.json", "index-logs.json")
"""What releases before the append-only index kept; deleted on sight."""
_COMPACT_MIN_LINES: Final = 1024


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


class Brief(msgspec.Struct):
    """A row as listing reads it: the session, and the stamp of the log bytes it describes."""

    session: StoredSession
    log: _Stamp

    def covers(self, st: os.stat_result) -> bool:
        """True if the log (as ``stat`` saw it) holds exactly these bytes, and the stamp is not racy."""
        log = self.log
        return (st.st_ino, st.st_size, st.st_ctime_ns) == (
            log.ino,
            log.size + log.torn_bytes,
            log.ctime_ns,
        ) and log.seen_ns - log.ctime_ns >= _RACY_NS


_RACY_NS: Final = 2_000_000_000
_ROW_ID: Final = re.compile(rb'^\{"session":\{"id":"([^"\\]*)"', re.MULTILINE)
_encoder: Final = msgspec.json.Encoder()
_row_decoder: Final = msgspec.json.Decoder(Row)
_brief_decoder: Final = msgspec.json.Decoder(Brief)


class SessionIndex:
    """The index file of one store, as this process has read it.

    The store asks it for rows and hands it new ones; everything about the
    file (reading forward, saving, compaction, old formats) stays in here.
    """

    def __init__(self, path: Path, lock_path: Path) -> None:
        self.path = path
        self._lock = FileLock(lock_path, 0.0, lambda: SessionBusy(f"{lock_path} is held"))
        self._mutex = threading.RLock()
        self._buf = bytearray()
        """The file's complete lines as read so far."""
        self._ino = 0
        self._briefs: dict[str, Brief] = {}
        self._briefs_upto = 0
        self._lines = 0
        self._pending: dict[str, Row] = {}
        """Rows to save at the next :meth:`flush`."""
        self._cleaned = False
        self._warned = False
        self._next_compact_check = _COMPACT_MIN_LINES
        self._ids: set[str] = set()
        self._ids_upto = 0

    # -- reading -------------------------------------------------------------------

    def _catch_up(self) -> None:
        """Read what was appended since the last look; read it all again if the file was replaced."""
        if not self._cleaned:
            self._cleaned = True
            for name in OLD_FILES:
                with contextlib.suppress(OSError):
                    os.unlink(self.path.parent / name)
        try:
            fd = open_regular(self.path)
        except FileNotFoundError:
            self._reset(0)
            return
        except UnsafeLogPath as exc:
            self._reset(0)
            if not self._warned:
                self._warned = True
                warnings.warn(f"{exc}; the index is not used, the logs answer", DamagedLogWarning, stacklevel=4)
            return
        except OSError:
            return  # unreadable: answer from the logs
        try:
            st = os.fstat(fd)
            if st.st_ino != self._ino or st.st_size < len(self._buf):
                self._reset(st.st_ino)
            if st.st_size > len(self._buf):
                more = read_fd(fd, len(self._buf), st.st_size)
                end = more.rfind(b"\n") + 1
                self._buf += more[:end]
                self._lines += more.count(b"\n", 0, end)
        finally:
            os.close(fd)

    def _reset(self, ino: int) -> None:
        self._buf = bytearray()
        self._ino = ino
        self._briefs = {}
        self._briefs_upto = 0
        self._lines = 0
        self._ids = set()
        self._ids_upto = 0

    def row(self, session_id: str) -> Row | None:
        """The newest saved row of one session, or None."""
        with self._mutex:
            pending = self._pending.get(session_id)
            if pending is not None:
                return pending
            self._catch_up()
            return self._last_row(session_id)

    def _last_row(self, session_id: str) -> Row | None:
        needle = b'{"session":{"id":' + _encoder.encode(session_id)
        end = len(self._buf)
        while (at := self._buf.rfind(needle, 0, end)) >= 0:
            stop = self._buf.find(b"\n", at)
            try:
                return _row_decoder.decode(self._buf[at:stop])
            except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
                end = at  # a damaged line: an older one may do
        return None

    def rows_near(self, directory: str | None, git_root: str | None) -> dict[str, Row]:
        """The newest rows of the sessions in ``directory`` or under ``git_root``, without decoding the others."""
        with self._mutex:
            self._catch_up()
            ids: set[str] = set()
            for field, value in (("directory", directory), ("git_root", git_root)):
                if value is None:
                    continue
                needle = b'"' + field.encode() + b'":' + _encoder.encode(value)
                at = self._buf.find(needle)
                while at >= 0:
                    start = self._buf.rfind(b"\n", 0, at) + 1
                    head = bytes(self._buf[start : start + 60])
                    if head.startswith(b'{"session":{"id":"'):
                        ids.add(head[18 : head.find(b'"', 18)].decode(errors="replace"))
                    at = self._buf.find(needle, at + len(needle))
            ids.update(sid for sid, row in self._pending.items() if _placed(row.session, directory, git_root))
            rows = {}
            for session_id in ids:
                row = self._pending.get(session_id) or self._last_row(session_id)
                if row is not None and _placed(row.session, directory, git_root):
                    rows[session_id] = row
            return rows

    def briefs(self) -> dict[str, Brief]:
        """Every session's newest row, as listing needs it."""
        with self._mutex:
            self._catch_up()
            if self._briefs_upto < len(self._buf):
                chunk = bytes(self._buf[self._briefs_upto :])
                self._briefs.update(_decode_briefs(chunk))
                self._briefs_upto = len(self._buf)
            briefs = dict(self._briefs)
            for session_id, row in self._pending.items():
                log = row.log
                briefs[session_id] = Brief(
                    row.session, _Stamp(log.size, log.ino, log.ctime_ns, log.seen_ns, log.torn_bytes)
                )
            return briefs

    # -- writing -------------------------------------------------------------------

    def put(self, row: Row) -> None:
        """Remember a row, to be saved at the next :meth:`flush`."""
        log = msgspec.structs.replace(row.log, header=None)  # the session carries what the header says
        with self._mutex:
            self._pending[row.session.id] = Row(session=row.session, log=log)

    def saved_size(self, session_id: str) -> int:
        """How many log bytes the last row saved or pending covers (0 if none)."""
        row = self.row(session_id)
        return row.log.size if row is not None else 0

    def flush(self) -> None:
        """Append the rows put since the last flush, in one write. A store that refuses writes keeps none."""
        with self._mutex:
            if not self._pending:
                return
            data = b"".join(_encoder.encode(row) + b"\n" for row in self._pending.values())
            self._pending.clear()
            flags = os.O_RDWR | os.O_APPEND | os.O_CREAT
            try:
                fd = open_regular(self.path, flags)
            except (OSError, ValueError):
                return  # a read-only store, or something hostile at the path: the logs still answer
            try:
                # A line cut short (a full disk, a crash) must not swallow the first row after it.
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data
                write_all(fd, data)
            except OSError:
                return
            finally:
                os.close(fd)
            self._maybe_compact()

    def ids(self) -> set[str]:
        """The ids of every session with a row (saved or pending), without decoding the rows."""
        with self._mutex:
            self._catch_up()
            if self._ids_upto < len(self._buf):
                chunk = bytes(self._buf[self._ids_upto :])
                self._ids.update(m.decode(errors="replace") for m in _ROW_ID.findall(chunk))
                self._ids_upto = len(self._buf)
            return self._ids | set(self._pending)

    def _maybe_compact(self) -> None:
        """Rewrite the file with one line per session once superseded lines outnumber live ones.

        Checked again only after the file doubled, so the check costs no more than the appends did.
        """
        if self._lines < self._next_compact_check:
            return
        self._next_compact_check = 2 * self._lines
        briefs = self.briefs()
        if self._lines < 2 * len(briefs):
            return
        rows = [row for sid in briefs if (row := self._last_row(sid)) is not None]
        data = b"".join(_encoder.encode(row) + b"\n" for row in rows)
        with contextlib.suppress(OSError, SessionBusy), self._lock.held():
            atomic_write(self.path, data, durable=False)
            self._reset(0)
            self._next_compact_check = _COMPACT_MIN_LINES

    def clear(self) -> None:
        """Delete the file and forget every row (the next reads rebuild it from the logs)."""
        with self._mutex:
            self._pending.clear()
            for path in (self.path, *(self.path.parent / name for name in OLD_FILES)):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            self._reset(0)

    def close(self) -> None:
        self.flush()
        self._lock.close()


def _placed(session: StoredSession, directory: str | None, git_root: str | None) -> bool:
    return (directory is not None and session.directory == directory) or (
        git_root is not None and session.git_root == git_root
    )


def _decode_briefs(chunk: bytes) -> Iterable[tuple[str, Brief]]:
    try:
        briefs = _brief_decoder.decode_lines(chunk)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        briefs = []
        for line in chunk.split(b"\n"):
            with contextlib.suppress(msgspec.DecodeError, RecursionError, UnicodeDecodeError):
                if line.strip():
                    briefs.append(_brief_decoder.decode(line))
    return ((brief.session.id, brief) for brief in briefs)
