"""An append-only JSON-lines log file: tolerant reading, locked batch appends.

Reading never takes the lock: only whole lines (ending in ``\\n``) are read, so
a reader racing a writer sees a prefix of the writer's batch at worst. Bytes
after the last newline are a *torn tail* (a crash mid-write, or a writer still
at work); the next append repairs it under the lock before writing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import stat
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import filelock
import msgspec

from eventlog import _fs
from eventlog.chain import active_head
from eventlog.durability import FILE_MODE, Durability, check_durability, ensure_private_dir, sync_dir, sync_file
from eventlog.errors import LogBusy, LogWriteError, StaleHead, UnsafeLogPath
from eventlog.record import KIND_EVENT, KIND_FACT, KIND_HEADER, Record, decode_lines, decode_record, encode_records

__all__ = ["Damage", "FactRef", "LogFile", "LogRead", "LogState", "read_log"]

_RECLAIM_BYTES: Final = 1 << 16
"""A failed create leaves at most a header's worth of bytes; a longer file is a real log."""
_INLINE_FACT_BYTES: Final = 512
"""Fact values up to this size are kept in :class:`LogState`, larger ones by offset."""
_TAIL_BYTES: Final = 32
"""How many of the last covered bytes :class:`LogState` keeps to tell growth from replacement."""


class Damage(msgspec.Struct, frozen=True):
    """A line that could not be read, found at byte ``offset``."""

    offset: int
    length: int
    reason: str


_NOT_KEPT: Final = msgspec.Raw(b"")


class FactRef(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Where the newest value of one fact lives in the log."""

    ts: dt.datetime
    id: str
    offset: int
    length: int
    # Not `Raw | None`: msgspec decodes that union from null only (msgspec#659), so every
    # saved index holding a kept value failed to load and was rebuilt from all the logs.
    inline: msgspec.Raw = msgspec.field(default=_NOT_KEPT, name="value")
    """The raw JSON value when it is small, else empty; use :attr:`value`."""

    @property
    def value(self) -> msgspec.Raw | None:
        """The raw JSON value when it is small; otherwise None: read it at ``offset``."""
        kept = self.inline
        # Indexes written before the fix hold null for "not kept"; a real null is read from the log.
        if not len(kept) or (len(kept) == 4 and bytes(kept) == b"null"):
            return None
        return kept

    @value.setter
    def value(self, raw: msgspec.Raw | None) -> None:
        self.inline = raw if raw is not None else _NOT_KEPT

    def newer_than(self, other: FactRef) -> bool:
        # Ties on the timestamp fall back to the id so every copy picks the same winner.
        return (self.ts, self.id) > (other.ts, other.id)


class LogState(msgspec.Struct, kw_only=True):
    """A summary of a log's complete lines, cheap to extend as the log grows.

    ``size``, ``ino`` and ``mtime_ns`` say which bytes it covers; a log that
    grew is folded from ``size`` on, anything else is read again.
    """

    size: int = 0
    ino: int = 0
    mtime_ns: int = 0
    header: Record | None = None
    head_id: str | None = None
    head_ts: dt.datetime | None = None
    events: int = 0
    linear: bool = True
    """False once the log holds a fork or a gap; then the head is the active head of the tree."""
    facts: dict[str, dict[str, FactRef]] = msgspec.field(default_factory=dict)
    damaged: int = 0
    torn_bytes: int = 0
    tail: bytes = b""
    """The last bytes before ``size`` (up to 32): a log only grew if its old part still ends with them."""

    def fact(self, name: str, key: str = "") -> FactRef | None:
        return self.facts.get(name, {}).get(key)

    def _fold(self, record: Record, offset: int, length: int) -> bool:
        """Fold one record in; False if the chain stopped being a straight line."""
        if record.k == KIND_EVENT:
            if record.parent != self.head_id:
                return False
            self.head_id = record.id
            self.head_ts = record.ts
            self.events += 1
        elif record.k == KIND_FACT and record.type is not None:
            ref = FactRef(ts=record.ts, id=record.id, offset=offset, length=length)
            if len(record.data) <= _INLINE_FACT_BYTES:
                ref.value = record.data
            keyed = self.facts.setdefault(record.type, {})
            current = keyed.get(record.key or "")
            if current is None or ref.newer_than(current):
                keyed[record.key or ""] = ref
        elif record.k == KIND_HEADER and self.header is None:
            self.header = record
        return True


class LogRead(msgspec.Struct, kw_only=True):
    """Everything read from a log: its records in file order and what was damaged."""

    records: list[Record]
    damaged: list[Damage]
    torn: Damage | None
    size: int
    """Bytes of complete lines; a torn tail starts here."""


def decode_each(buf: bytes, base: int) -> tuple[list[Record], list[int], list[int], list[Damage]]:
    """Decode line by line, keeping offsets; the slow path, for damaged logs and folds."""
    records: list[Record] = []
    offsets: list[int] = []
    lengths: list[int] = []
    damaged: list[Damage] = []
    pos = 0
    for line in buf.split(b"\n")[:-1]:
        length = len(line) + 1
        if line.strip():
            try:
                record = decode_record(line)
            except (msgspec.DecodeError, RecursionError) as exc:
                damaged.append(Damage(base + pos, length, _reason(exc)))
            else:
                records.append(record)
                offsets.append(base + pos)
                lengths.append(length)
        pos += length
    return records, offsets, lengths, damaged


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply"
    return str(exc)


def split_torn(buf: bytes, base: int) -> tuple[bytes, int, Damage | None]:
    """Split ``buf`` into its complete lines and the torn tail after them."""
    end = buf.rfind(b"\n") + 1
    torn = Damage(base + end, len(buf) - end, "torn tail: no newline") if end < len(buf) else None
    return buf[:end], end, torn


def read_log(path: Path, start: int = 0) -> LogRead:
    """Read a log from byte ``start``, skipping (and reporting) lines that cannot be read.

    :raises UnsafeLogPath: if ``path`` is a symlink or not a regular file.
    :raises FileNotFoundError: if there is no log.
    """
    buf = read_bytes(path, start)
    body, end, torn = split_torn(buf, start)
    try:
        records = decode_lines(body)
        damaged: list[Damage] = []
    except (msgspec.DecodeError, RecursionError):
        records, _, _, damaged = decode_each(body, start)
    return LogRead(records=records, damaged=damaged, torn=torn, size=start + end)


def _open_log(path: Path, flags: int) -> int:
    try:
        fd = _fs.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    except OSError as exc:
        if exc.errno == getattr(os, "ELOOP", -1) or path.is_symlink():
            raise UnsafeLogPath(
                f"{path} is a symlink; logs must be regular files (replace it with the file itself)"
            ) from exc
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UnsafeLogPath(f"{path} is not a regular file")
    return fd


def read_bytes(path: Path, start: int) -> bytes:
    fd = _open_log(path, os.O_RDONLY)
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            f.seek(start)
            return f.read()
    finally:
        os.close(fd)


def _read_from(fd: int, start: int, size: int) -> bytes:
    """The bytes from ``start`` to the end of the file, ``size`` bytes long when last seen.

    ``pread`` rather than a buffered file object: this runs twice per append.
    """
    chunks = []
    want = max(size - start, 0) + 1  # one more, so a file that grew since is read on
    while chunk := os.pread(fd, want, start):
        chunks.append(chunk)
        start += len(chunk)
        want = 1 << 16
    return b"".join(chunks)


def _still_ends_with(fd: int, state: LogState) -> bool:
    """Whether the bytes ``state`` covers still end with its ``tail``.

    ext4 gives a freed inode to the next new file, so a log that a sync tool or
    git replaced (temporary file, rename) can come back with its old inode and
    a larger size but other bytes; folding it from the old size would keep
    facts and a head the file no longer has.
    """
    if not state.size:
        return True
    if len(state.tail) != min(state.size, _TAIL_BYTES):
        return False  # saved before tails were kept, or a damaged index: read the log afresh
    return os.pread(fd, len(state.tail), state.size - len(state.tail)) == state.tail


class LogFile:
    """One append-only log, its lock, and a cached :class:`LogState`.

    :param path: the log file.
    :param lock_path: the lock file guarding appends (disposable).
    :param lock_timeout: seconds to wait for the lock before :class:`LogBusy`.
    :param durability: ``"fsync"`` or ``"flush"`` (see :data:`Durability`).
    :param trash_dir: where a torn tail is saved before it is cut off.
    """

    def __init__(
        self,
        path: Path,
        lock_path: Path,
        *,
        lock_timeout: float = 2.0,
        durability: Durability = "fsync",
        trash_dir: Path | None = None,
    ) -> None:
        self.path = path
        self.durability = check_durability(durability)
        self._lock_timeout = lock_timeout
        self._lock_path = lock_path
        self._lock_file = os.fspath(lock_path)  # a str: a Path is converted again on every open
        self._trash_dir = trash_dir
        self._state = LogState()
        self._mutex = threading.RLock()

    # -- reading -------------------------------------------------------------------

    def state(self, known: LogState | None = None) -> LogState:
        """The log's summary, brought up to date with the file.

        :param known: a summary from elsewhere (an index) to extend instead of the cached one.
        """
        with self._mutex:
            fd = _open_log(self.path, os.O_RDONLY)
            try:
                # A saved summary can match the file's inode, size and mtime and still describe other
                # bytes (cut back and regrown within one clock tick); taking it would make every
                # append fail with StaleHead, so only a summary whose tail is still there is taken.
                if known is not None and known.size > self._state.size and _still_ends_with(fd, known):
                    self._state = known
                return self._refresh(fd)
            finally:
                os.close(fd)

    def _refresh(self, fd: int) -> LogState:
        st = os.fstat(fd)
        state = self._state
        if (st.st_ino, st.st_size, st.st_mtime_ns) == (state.ino, state.size + state.torn_bytes, state.mtime_ns):
            return state
        if st.st_ino != state.ino or st.st_size < state.size or not _still_ends_with(fd, state):
            state = LogState()
        else:
            # Copy before folding: callers may still hold the old summary.
            state = msgspec.structs.replace(state, facts={name: dict(keys) for name, keys in state.facts.items()})
        buf = _read_from(fd, state.size, st.st_size)
        body, end, torn = split_torn(buf, state.size)
        records, offsets, lengths, damaged = decode_each(body, state.size)
        state.damaged += len(damaged)
        for record, offset, length in zip(records, offsets, lengths, strict=True):
            if not state._fold(record, offset, length):
                state = self._fold_tree(fd)
                break
        else:
            state.size += end
            state.tail = (state.tail + body[-_TAIL_BYTES:])[-_TAIL_BYTES:]
        state.torn_bytes = torn.length if torn else 0
        state.ino, state.mtime_ns = st.st_ino, st.st_mtime_ns
        self._state = state
        return state

    def _fold_tree(self, fd: int) -> LogState:
        """Summarize a log whose events are not one straight line (forks, gaps, duplicates)."""
        with os.fdopen(fd, "rb", closefd=False) as f:
            f.seek(0)
            buf = f.read()
        body, end, _ = split_torn(buf, 0)
        records, offsets, lengths, damaged = decode_each(body, 0)
        state = LogState(damaged=len(damaged), size=end, tail=body[-_TAIL_BYTES:])
        events: list[Record] = []
        for record, offset, length in zip(records, offsets, lengths, strict=True):
            if record.k == KIND_EVENT:
                events.append(record)
            else:
                state._fold(record, offset, length)
        head = active_head(events)
        state.linear = False
        if head is not None:
            state.head_id, state.head_ts, state.events = head.record.id, head.record.ts, head.unique
        return state

    def read(self) -> LogRead:
        """Read every record of the log (see :func:`read_log`)."""
        return read_log(self.path)

    # -- writing -------------------------------------------------------------------

    def create(self, header: Record) -> LogState:
        """Create the log with its header line, durably.

        :raises FileExistsError: if the log already exists.
        """
        data = encode_records([header])
        with self._locked():
            try:
                fd = _fs.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
            except FileExistsError:
                fd = self._reclaim_failed_create()
            except OSError as exc:
                raise self._write_error(exc, "could not create the log") from exc
            try:
                _fs.fchmod(fd, FILE_MODE)
                self._write_all(fd, data, 0)
                if self.durability == "fsync":
                    sync_dir(self.path.parent)
            except BaseException as exc:
                # A log left behind after a failed create would make every retry fail with FileExistsError.
                with contextlib.suppress(OSError):
                    _fs.unlink(self.path)
                if isinstance(exc, OSError) and not isinstance(exc, LogWriteError):
                    raise self._write_error(exc, "could not create the log") from exc
                raise
            finally:
                os.close(fd)
            return self.state()

    def _reclaim_failed_create(self) -> int:
        """Open for writing a log that holds no complete line: what a create that failed leaves.

        A create whose write failed and whose clean-up failed too (or a process
        killed between creating the file and writing its header) leaves such a
        file, and every retry would otherwise fail with FileExistsError. Any
        bytes in it go to the trash first, as a torn tail does.

        :raises FileExistsError: if the log holds a complete line (it is a real log).
        """
        fd = self._open_for_append()
        try:
            if os.fstat(fd).st_size > _RECLAIM_BYTES or b"\n" in os.pread(fd, _RECLAIM_BYTES, 0):
                raise FileExistsError(errno.EEXIST, "the log already exists", str(self.path))
            self._repair_torn_tail(fd, LogState())
        except BaseException:
            os.close(fd)
            raise
        return fd

    def append(self, records: Sequence[Record]) -> LogState:
        """Append records as one batch: one lock, one write, one sync.

        Events in the batch must continue the log's head (the first one's parent
        is the head, each later one's parent is the one before it).

        :raises StaleHead: if the batch does not continue the current head.
        :raises LogBusy: if the lock was not free in time.
        :raises LogWriteError: if the write or sync failed (the log is rolled back).
        """
        data = encode_records(list(records))
        with self._locked():
            fd = self._open_for_append()
            try:
                state = self._refresh(fd)
                if state.torn_bytes:
                    state = self._repair_torn_tail(fd, state)
                self._check_continues(records, state.head_id)
                self._write_all(fd, data, state.size)
                state = self._fold_written(fd, state, records, data)
            finally:
                os.close(fd)
            return state

    def _fold_written(self, fd: int, before: LogState, records: Sequence[Record], data: bytes) -> LogState:
        """The state after our own batch, folded from the records just written instead of read back.

        Under the lock nobody else appends; if the file still looks otherwise, read it as usual.
        """
        st = os.fstat(fd)
        if st.st_ino != before.ino or st.st_size != before.size + len(data) or before.torn_bytes:
            return self._refresh(fd)
        state = msgspec.structs.replace(before, facts={name: dict(keys) for name, keys in before.facts.items()})
        offset = before.size
        for record, line in zip(records, data.split(b"\n"), strict=False):
            if not state._fold(record, offset, len(line) + 1):
                return self._refresh(fd)  # the batch made a fork or a gap: summarize the tree
            offset += len(line) + 1
        state.size = offset
        state.tail = (before.tail + data[-_TAIL_BYTES:])[-_TAIL_BYTES:]
        state.ino, state.mtime_ns = st.st_ino, st.st_mtime_ns
        self._state = state
        return state

    def repair(self) -> LogState:
        """Repair a torn tail now (as the next append would) and return the new state."""
        with self._locked():
            fd = self._open_for_append()
            try:
                state = self._refresh(fd)
                if state.torn_bytes:
                    state = self._repair_torn_tail(fd, state)
                return state
            finally:
                os.close(fd)

    def _check_continues(self, records: Sequence[Record], head: str | None) -> None:
        expected = head
        for record in records:
            if record.k != KIND_EVENT:
                continue
            if record.parent != expected:
                raise StaleHead(self.path, record.parent, expected)
            expected = record.id

    def _open_for_append(self) -> int:
        try:
            return _open_log(self.path, os.O_RDWR | os.O_APPEND)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise self._write_error(exc, "could not open the log for appending") from exc

    def _write_error(self, exc: OSError, what: str) -> LogWriteError:
        return LogWriteError(exc.errno, f"{self.path}: {what} ({exc.strerror or exc}); nothing was written")

    def _repair_torn_tail(self, fd: int, state: LogState) -> LogState:
        """Cut off bytes after the last newline, keeping a copy in the trash first.

        :raises LogWriteError: if the copy or the cut failed (the log is as it was, or cut after the copy).
        """
        with os.fdopen(fd, "rb", closefd=False) as f:
            f.seek(state.size)
            fragment = f.read()
        try:
            if self._trash_dir is not None and fragment:
                # Not a bare mkdir: a trash/ symlinked elsewhere would receive the fragment.
                ensure_private_dir(self._trash_dir)
                keep = self._trash_dir / f"{self.path.stem}.torn-{state.size}-{os.getpid()}.bin"
                kfd = _fs.open(keep, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
                try:
                    # A short write here would keep only part of the fragment the cut then destroys.
                    view = memoryview(fragment)
                    while view:
                        view = view[_fs.write(kfd, view) :]
                    sync_file(kfd)
                finally:
                    os.close(kfd)
            _fs.ftruncate(fd, state.size)
            sync_file(fd)
        except OSError as exc:
            raise self._write_error(exc, "could not repair the torn tail") from exc
        return self._refresh(fd)

    def _write_all(self, fd: int, data: bytes, good_size: int) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[_fs.write(fd, view) :]
            if self.durability == "fsync":
                sync_file(fd)
        except OSError as exc:
            # Roll back so the log never holds part of an unacknowledged batch.
            reason = exc.strerror or str(exc)
            try:
                _fs.ftruncate(fd, good_size)
                sync_file(fd)
            except OSError:
                raise LogWriteError(
                    exc.errno,
                    f"{self.path}: append failed ({reason}) and could not be rolled back; "
                    "part of the batch may be in the log, so reload it before retrying",
                    rolled_back=False,
                ) from exc
            raise LogWriteError(exc.errno, f"{self.path}: append failed ({reason}); nothing was written") from exc

    @contextlib.contextmanager
    def _locked(self):  # type: ignore[no-untyped-def]
        # filelock's descriptor lock is the same flock a FileLock on this path takes, at a
        # fraction of FileLock's cost per acquire (most of a flush append, docs/BENCHMARKS.md).
        busy = LogBusy(f"{self.path}: another process holds {self._lock_path}; nothing was written, try again")
        if not self._mutex.acquire(timeout=self._lock_timeout if self._lock_timeout >= 0 else -1):
            raise busy
        try:
            # Not through _fs: the lock file holds no data, as when filelock opened it.
            fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
            try:
                _lock_descriptor(fd, self._lock_timeout, busy)
                try:
                    yield
                finally:
                    filelock.unlock_descriptor(fd)
            finally:
                os.close(fd)
        finally:
            self._mutex.release()


def _lock_descriptor(fd: int, timeout: float, busy: LogBusy) -> None:
    """Take the lock on ``fd``, polling for at most ``timeout`` seconds (forever if negative)."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while not filelock.lock_descriptor(fd, blocking=False):
        if timeout >= 0 and time.monotonic() + pause > deadline:
            raise busy
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
