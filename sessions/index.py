"""The index: disposable caches of each session, in two files.

``ROOT/index-logs.json`` keeps every session's full summary: a
:class:`~eventlog.LogState` plus the header's attributes, recording which bytes
of the log it covers (inode, size, mtime). A reader that finds the log grew
folds only the new lines; a log that changed otherwise is read again. Appends,
metadata and refreshes use it.

``ROOT/index.json`` keeps the rows (:mod:`sessions._rows`): the few fields
``list_sessions`` and ``find_resumable`` return, each with the log bytes it
covers, grouped by directory, and the last trusted listing of ``ROOT/sessions``.
A new process answers from it alone while the logs are unchanged, decoding
only the directory it is asked about and never the much larger summaries.

Both are written together, atomically, under one lock. Either may be stale,
missing or deleted at any time and every answer still comes from the logs.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any, Final

import filelock
import msgspec

from eventlog import LogState, atomic_write
from sessions._rows import Rows, row_of
from sessions.errors import UnsafeStorePath

__all__ = ["INDEX_FORMAT", "Entries", "IndexEntry", "SessionIndex"]

INDEX_FORMAT: Final = 1


class IndexEntry(msgspec.Struct, kw_only=True):
    """What the index keeps about one session."""

    directory: str | None
    git_root: str | None
    created_at: dt.datetime
    log: LogState

    @classmethod
    def from_state(cls, state: LogState) -> IndexEntry:
        """The entry of a log summarized by ``state``, its place and creation time read from the header."""
        directory = git_root = None
        created_at = dt.datetime.fromtimestamp(state.mtime_ns / 1e9, dt.UTC)
        if state.header is not None:
            created_at = state.header.ts
            try:
                attributes = _header_decoder.decode(state.header.data)
            except (msgspec.DecodeError, RecursionError):
                attributes = {}
            directory = attributes.get("directory") if isinstance(attributes.get("directory"), str) else None
            git_root = attributes.get("git_root") if isinstance(attributes.get("git_root"), str) else None
        return cls(directory=directory, git_root=git_root, created_at=created_at, log=state)

    def is_current(self, st: os.stat_result) -> bool:
        """True if the log (as ``lstat`` saw it) holds exactly the bytes this entry covers."""
        log = self.log
        return (st.st_ino, st.st_size, st.st_mtime_ns) == (log.ino, log.size + log.torn_bytes, log.mtime_ns)


class _IndexFile(msgspec.Struct):
    """The whole file fully decoded; the service reads it as :class:`_StoredIndexFile`."""

    format: int
    sessions: dict[str, IndexEntry]


class _StoredEntry(msgspec.Struct, kw_only=True):
    """An entry as read back from the file, its log summary left as raw JSON until it is used."""

    directory: str | None
    git_root: str | None
    created_at: dt.datetime
    log: msgspec.Raw


class _StoredIndexFile(msgspec.Struct):
    format: int
    sessions: dict[str, _StoredEntry]


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(_StoredIndexFile)
_header_decoder: Final = msgspec.json.Decoder(dict[str, Any])
_log_decoder: Final = msgspec.json.Decoder(LogState)


class Entries(MutableMapping[str, IndexEntry]):
    """Index entries by session id. One read from the file is decoded when first used.

    Decoding every log summary of 10,000 sessions costs several times what reading
    the file does, and ``find_resumable`` needs only the few in one directory.
    A summary that turns out damaged is dropped (its log is read instead) and
    :attr:`damaged` is set so the index gets rewritten.
    """

    def __init__(self) -> None:
        self._decoded: dict[str, IndexEntry] = {}
        self._stored: dict[str, _StoredEntry] = {}
        self.loaded_sizes: dict[str, int] = {}
        """The log size each stored entry covered when it was read from the file."""
        self.damaged = False
        self._by_place: dict[str | None, set[str]] = {}
        """Session ids by directory and by git root (one map: callers check which matched)."""

    def __getitem__(self, session_id: str) -> IndexEntry:
        entry = self._decoded.get(session_id)
        if entry is not None:
            return entry
        stored = self._stored.pop(session_id)
        try:
            log = _log_decoder.decode(stored.log)
        except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            self.damaged = True
            raise KeyError(session_id) from None
        entry = IndexEntry(directory=stored.directory, git_root=stored.git_root, created_at=stored.created_at, log=log)
        self._decoded[session_id] = entry
        self.loaded_sizes[session_id] = log.size
        return entry

    def __setitem__(self, session_id: str, entry: IndexEntry) -> None:
        if self.place(session_id) != (entry.directory, entry.git_root):  # every append lands here
            self._unplace(session_id)
            self._place(session_id, entry.directory, entry.git_root)
        self._stored.pop(session_id, None)
        self._decoded[session_id] = entry

    def __delitem__(self, session_id: str) -> None:
        self._unplace(session_id)
        if self._decoded.pop(session_id, None) is None:
            del self._stored[session_id]

    def _place(self, session_id: str, directory: str | None, git_root: str | None) -> None:
        for where in (directory, git_root):
            if where is not None:
                self._by_place.setdefault(where, set()).add(session_id)

    def _unplace(self, session_id: str) -> None:
        for where in self.place(session_id) or ():
            if where is not None:
                self._by_place.get(where, set()).discard(session_id)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._decoded or session_id in self._stored

    def __iter__(self) -> Iterator[str]:
        return iter([*self._decoded, *self._stored])

    def __len__(self) -> int:
        return len(self._decoded) + len(self._stored)

    def clear(self) -> None:
        self._decoded.clear()
        self._stored.clear()
        self.loaded_sizes.clear()
        self._by_place.clear()

    def place(self, session_id: str) -> tuple[str | None, str | None] | None:
        """The session's ``(directory, git_root)`` without decoding its log summary, or None."""
        entry = self._decoded.get(session_id) or self._stored.get(session_id)
        return (entry.directory, entry.git_root) if entry is not None else None

    def placed(self, directory: str | None, git_root: str | None) -> set[str]:
        """Ids of the sessions whose directory or git root is one of these (a superset: check which)."""
        return set().union(*(self._by_place.get(where, ()) for where in (directory, git_root) if where is not None))

    def snapshot(self) -> dict[str, IndexEntry]:
        """Every entry, decoded; damaged ones are left out."""
        out = dict(self._decoded)
        for session_id in list(self._stored):
            try:
                out[session_id] = self[session_id]
            except KeyError:
                continue
        return out

    def stored(self, session_id: str, entry: _StoredEntry) -> None:
        """Take in an entry read from the file, to decode when used."""
        self._unplace(session_id)
        self._decoded.pop(session_id, None)
        self._stored[session_id] = entry
        self._place(session_id, entry.directory, entry.git_root)

    def stored_many(self, entries: dict[str, _StoredEntry]) -> None:
        """Take in entries read from the file for sessions not known yet (:meth:`stored`, in bulk)."""
        self._stored.update(entries)
        by_place = self._by_place
        for session_id, entry in entries.items():
            if entry.directory is not None:
                by_place.setdefault(entry.directory, set()).add(session_id)
            if entry.git_root is not None:
                by_place.setdefault(entry.git_root, set()).add(session_id)

    def decoded(self) -> dict[str, IndexEntry]:
        """The entries decoded so far (new or changed ones among them)."""
        return self._decoded

    def decoded_sizes(self) -> dict[str, int]:
        return {session_id: entry.log.size for session_id, entry in self._decoded.items()}

    def encodable(self) -> dict[str, IndexEntry | _StoredEntry]:
        """Every entry as it is written: the ones never decoded go back byte for byte."""
        return {**self._stored, **self._decoded}


class SessionIndex:
    """The in-memory index, loaded from and saved to ``path``."""

    def __init__(self, path: Path, lock_path: Path, rows_path: Path) -> None:
        self.path = path
        """The summaries file."""
        self.rows_path = rows_path
        self.entries = Entries()
        self.rows = Rows()
        self._dirty = False
        self.rows_dirty = False
        """True when the saved rows or listing are behind, though the summaries may not be."""
        self._rows_seen: tuple[int, int, int] | None = None
        self._lock = filelock.FileLock(lock_path, timeout=0, mode=0o600)
        self._seen: tuple[int, int, int] | None = None
        self._saved_sizes: dict[str, int] = {}
        self.mutex = threading.RLock()

    @property
    def dirty(self) -> bool:
        """True when the saved index is behind (or was found damaged) and should be written."""
        return self._dirty or self.entries.damaged or self.rows_dirty or self.rows.damaged

    @dirty.setter
    def dirty(self, value: bool) -> None:
        self._dirty = value
        if not value:
            self.entries.damaged = False

    def load(self) -> None:
        """Take in what another process saved, if the file changed since we last looked.

        A damaged index is ignored (and later rewritten): it is only a cache.

        :raises UnsafeStorePath: if the index is a symlink.
        """
        path = self.path
        seen = _identity(path)
        if seen is None:
            # A store written before the index was split keeps its summaries in the rows' place.
            path, seen = self.rows_path, _identity(self.rows_path)
            if seen is None:
                return
        if seen == self._seen:
            return
        try:
            with open(path, "rb") as f:
                loaded = _decoder.decode(f.read())
        except (OSError, msgspec.DecodeError, RecursionError, UnicodeDecodeError):
            # msgspec raises UnicodeDecodeError, not DecodeError, for invalid UTF-8 in a string.
            self.dirty = True
            return
        self._seen = seen
        if loaded.format != INDEX_FORMAT:
            self.dirty = True
            return
        known = self.entries
        # Sessions not known yet are kept raw, decoded when used: most never are.
        fresh = loaded.sessions if not known else {s: e for s, e in loaded.sessions.items() if s not in known}
        known.stored_many(fresh)
        if fresh is loaded.sessions:
            return
        for session_id, stored in loaded.sessions.items():
            if session_id in fresh:
                continue
            mine = known.get(session_id)
            try:
                log = _log_decoder.decode(stored.log)
            except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
                self.dirty = True
                continue
            if mine is None or (mine.log.ino == log.ino and log.size > mine.log.size):
                self.entries[session_id] = IndexEntry(
                    directory=stored.directory, git_root=stored.git_root, created_at=stored.created_at, log=log
                )
            self._saved_sizes[session_id] = log.size

    def load_rows(self) -> None:
        """Take in the rows another process saved, if the file changed since we last looked.

        Rows that are missing, damaged or of an older format are ignored (and later rewritten).

        :raises UnsafeStorePath: if the rows file is a symlink.
        """
        seen = _identity(self.rows_path)
        if seen is None:
            self.rows_dirty = True  # write it, once: it spares the next process the summaries
            return
        if seen == self._rows_seen:
            return
        try:
            with open(self.rows_path, "rb") as f:
                data = f.read()
        except OSError:
            self.rows_dirty = True
            return
        self._rows_seen = seen
        if not self.rows.take_in(data):
            self.rows_dirty = True

    def note_listing(self, mtime_ns: int, ids: frozenset[str], others: tuple[str, ...]) -> None:
        """Keep a trusted listing of the logs' folder, to be saved with the rows."""
        if self.rows.listing is None or self.rows.listing[:2] != (mtime_ns, ids):
            self.rows.listing = (mtime_ns, ids, others)
            self.rows_dirty = True

    def put(self, session_id: str, entry: IndexEntry) -> None:
        self.entries[session_id] = entry
        self.dirty = True

    def lag(self, session_id: str) -> int:
        """How many log bytes of this session the saved index does not cover."""
        entry = self.entries.get(session_id)
        if entry is None:
            return 0
        saved = self._saved_sizes.get(session_id, self.entries.loaded_sizes.get(session_id, 0))
        return entry.log.size - saved

    def save(self, *, durable: bool = True) -> bool:
        """Write the index atomically; False if another process is saving it right now or the disk refused.

        The summaries are written only if they changed, the rows always (they
        are small); the summaries first, so rows never run ahead of them by
        more than one crash. A failed save leaves the index dirty, to be saved
        later: it is only a cache, and raising here would fail a call whose log
        write already succeeded.
        """
        try:
            self._lock.acquire()
        except filelock.Timeout:
            return False
        try:
            with self.mutex:
                return self._save_locked(durable)
        finally:
            self._lock.release()

    def _save_locked(self, durable: bool) -> bool:
        if self._dirty or self.entries.damaged or not self.path.exists():
            self.load()  # keep what another process saved since we last looked
            data = _encoder.encode({"format": INDEX_FORMAT, "sessions": self.entries.encodable()})
            try:
                atomic_write(self.path, data, durable=durable)
                # Another process may delete the index (a reindex) right after our rename.
                st = os.lstat(self.path)
            except OSError:
                return False
            self._seen = (st.st_ino, st.st_size, st.st_mtime_ns)
            self._saved_sizes = self.entries.decoded_sizes()
            self._dirty = False
            self.entries.damaged = False
        self.load_rows()
        self._update_rows()
        try:
            atomic_write(self.rows_path, self.rows.encode(), durable=durable)
            st = os.lstat(self.rows_path)
        except OSError:
            return False
        self._rows_seen = (st.st_ino, st.st_size, st.st_mtime_ns)
        self.rows_dirty = self.rows.damaged = False
        return True

    def _update_rows(self) -> None:
        """Bring the rows up to the summaries: those decoded, and those no row covers yet."""
        rows = self.rows
        for session_id, entry in self.entries.decoded().items():
            row = rows.by_id.get(session_id)
            log = entry.log
            if row is None or (row.ino, row.size, row.mtime_ns) != (log.ino, log.size + log.torn_bytes, log.mtime_ns):
                rows.put(session_id, row_of(entry.directory, entry.git_root, entry.created_at, log))
        for session_id in [s for s in self.entries if s not in rows.by_id]:
            summary = self.entries.get(session_id)  # decodes: once, when the rows file was lost
            if summary is not None:
                rows.put(session_id, row_of(summary.directory, summary.git_root, summary.created_at, summary.log))


def _identity(path: Path) -> tuple[int, int, int] | None:
    """``(ino, size, mtime_ns)`` of an index file, or None if there is none.

    :raises UnsafeStorePath: if it is a symlink or not a regular file.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not os.path.isfile(path) or os.path.islink(path):
        raise UnsafeStorePath(f"{path} is not a regular file; delete it (it is rebuilt from the logs)")
    return (st.st_ino, st.st_size, st.st_mtime_ns)
