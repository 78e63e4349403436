"""The index: a disposable cache of each session's summary.

Every entry is a :class:`~eventlog.LogState` plus the header's attributes, and
records which bytes of the log it covers (inode, size, mtime). A reader that
finds the log grew folds only the new lines; a log that changed otherwise is
read again. So the index may be stale, missing or deleted at any time and every
answer still comes from the logs.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path
from typing import Final

import filelock
import msgspec

from eventlog import LogState, atomic_write
from sessions.errors import UnsafeStorePath

__all__ = ["INDEX_FORMAT", "IndexEntry", "SessionIndex"]

INDEX_FORMAT: Final = 1


class IndexEntry(msgspec.Struct, kw_only=True):
    """What the index keeps about one session."""

    directory: str | None
    git_root: str | None
    created_at: dt.datetime
    log: LogState

    def is_current(self, st: os.stat_result) -> bool:
        """True if the log (as ``lstat`` saw it) holds exactly the bytes this entry covers."""
        log = self.log
        return (st.st_ino, st.st_size, st.st_mtime_ns) == (log.ino, log.size + log.torn_bytes, log.mtime_ns)


class _IndexFile(msgspec.Struct):
    format: int
    sessions: dict[str, IndexEntry]


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(_IndexFile)


class SessionIndex:
    """The in-memory index, loaded from and saved to ``path``."""

    def __init__(self, path: Path, lock_path: Path) -> None:
        self.path = path
        self.entries: dict[str, IndexEntry] = {}
        self.dirty = False
        self._lock = filelock.FileLock(lock_path, timeout=0, mode=0o600)
        self._seen: tuple[int, int, int] | None = None
        self._saved_sizes: dict[str, int] = {}
        self.mutex = threading.RLock()

    def load(self) -> None:
        """Take in what another process saved, if the file changed since we last looked.

        A damaged index is ignored (and later rewritten): it is only a cache.

        :raises UnsafeStorePath: if the index is a symlink.
        """
        try:
            st = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not os.path.isfile(self.path) or os.path.islink(self.path):
            raise UnsafeStorePath(f"{self.path} is not a regular file; delete it (it is rebuilt from the logs)")
        seen = (st.st_ino, st.st_size, st.st_mtime_ns)
        if seen == self._seen:
            return
        try:
            with open(self.path, "rb") as f:
                loaded = _decoder.decode(f.read())
        except (OSError, msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            # msgspec raises UnicodeDecodeError, not DecodeError, for invalid UTF-8 in a string.
            self.dirty = True
            return
        self._seen = seen
        if loaded.format != INDEX_FORMAT:
            self.dirty = True
            return
        for session_id, entry in loaded.sessions.items():
            mine = self.entries.get(session_id)
            if mine is None or (mine.log.ino == entry.log.ino and entry.log.size > mine.log.size):
                self.entries[session_id] = entry
            self._saved_sizes[session_id] = entry.log.size

    def put(self, session_id: str, entry: IndexEntry) -> None:
        self.entries[session_id] = entry
        self.dirty = True

    def lag(self, session_id: str) -> int:
        """How many log bytes of this session the saved index does not cover."""
        entry = self.entries.get(session_id)
        if entry is None:
            return 0
        return entry.log.size - self._saved_sizes.get(session_id, 0)

    def save(self, *, durable: bool = True) -> bool:
        """Write the index atomically; False if another process is saving it right now or the disk refused.

        A failed save leaves the index dirty, to be saved later: it is only a cache,
        and raising here would fail a call whose log write already succeeded.
        """
        try:
            self._lock.acquire()
        except filelock.Timeout:
            return False
        try:
            with self.mutex:
                self.load()  # keep what another process saved since we last looked
                data = _encoder.encode(_IndexFile(INDEX_FORMAT, self.entries))
                try:
                    atomic_write(self.path, data, durable=durable)
                    # Another process may delete the index (a reindex) right after our rename.
                    st = os.lstat(self.path)
                except OSError:
                    return False
                self._seen = (st.st_ino, st.st_size, st.st_mtime_ns)
                self._saved_sizes = {sid: entry.log.size for sid, entry in self.entries.items()}
                self.dirty = False
        finally:
            self._lock.release()
        return True
