"""One append-only log file: create, append under its lock, repair a torn tail.

A :class:`LogFile` keeps the log's descriptor and its lock file's descriptor
open between appends, so an append costs a lock, a ``stat`` that checks the
path still names the file held (a sync tool or git may have replaced it), a
``write`` and, with ``durability="fsync"``, an ``fsync``. It also keeps the
log's summary (:class:`~eventlog.summary.LogState`), extended only by the bytes
it has not seen.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import EllipsisType
from typing import Final

from eventlog import _fs
from eventlog._lock import FileLock
from eventlog.durability import FILE_MODE, Durability, check_durability, sync_dir, sync_file
from eventlog.errors import LogBusy, LogWriteError, StaleHead, UnsafeLogPath
from eventlog.reader import open_regular, read_fd
from eventlog.record import KIND_EVENT, Record, encode_records
from eventlog.summary import LogState, fold_file
from eventlog.trash import save_to_trash

__all__ = ["LogFile"]

_RECLAIM_BYTES: Final = 1 << 16
"""A failed create leaves at most a header's worth of bytes; a longer file is a real log."""
_CREATE_FLAGS: Final = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class LogFile:
    """One append-only log, its lock, and its summary.

    :param path: the log file.
    :param lock_path: the lock file guarding appends (disposable).
    :param lock_timeout: seconds to wait for the lock before :class:`LogBusy`.
    :param durability: ``"fsync"`` or ``"flush"`` (see :data:`~eventlog.durability.Durability`).
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
        self._trash_dir = trash_dir
        self._lock = FileLock(lock_path, lock_timeout, self._busy)
        self._fd: int | None = None
        self._held: tuple[int, int] = (0, 0)
        """The (inode, device) of the open log."""
        self._state = LogState()
        self._state_mutex = threading.Lock()

    def _busy(self) -> LogBusy:
        return LogBusy(f"{self.path}: another process holds {self._lock.path}; nothing was written, try again")

    def close(self) -> None:
        """Close the descriptors held (the next call opens them again)."""
        with self._lock.held():
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        self._lock.close()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the log's append lock (merges take it to exclude appends)."""
        with self._lock.held():
            yield
            # Whoever held it may have replaced the file: look again next time.
            self._drop_fd()

    # -- reading -------------------------------------------------------------------

    def state(self, known: LogState | None = None) -> LogState:
        """The log's summary, brought up to date with the file; reads only bytes no summary covers.

        :param known: a summary from elsewhere (an index) to extend if it covers more than ours.
        :raises FileNotFoundError: if there is no log.
        :raises UnsafeLogPath: if the log is a symlink or not a regular file.
        """
        fd = open_regular(self.path)
        try:
            st = os.fstat(fd)
            state = self._best(st, known)
            state = fold_file(fd, st, state)
        finally:
            os.close(fd)
        self.adopt(state)
        return state

    def _best(self, st: os.stat_result, known: LogState | None) -> LogState | None:
        mine = self._state
        if known is None or known.ino != st.st_ino:
            return mine
        if mine.ino != st.st_ino or known.size > mine.size:
            return known
        return mine

    def adopt(self, state: LogState) -> None:
        """Take ``state`` as the summary (one computed elsewhere, e.g. by a resume's single pass)."""
        with self._state_mutex:
            if state.ino != self._state.ino or state.size >= self._state.size:
                self._state = state

    @property
    def cached_state(self) -> LogState:
        """The last summary seen, without looking at the file."""
        return self._state

    # -- writing -------------------------------------------------------------------

    def create(self, header: Record, records: Sequence[Record] = ()) -> LogState:
        """Create the log with its header line and ``records``, in one write, durably.

        :raises FileExistsError: if the log already exists.
        :raises LogWriteError: if the disk refused (no log is left behind).
        """
        data = encode_records([header, *records])
        with self._lock.held():
            self._drop_fd()
            try:
                fd = _fs.open(
                    self.path,
                    os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    FILE_MODE,
                )
            except FileExistsError:
                fd = self._reclaim_failed_create()
            except OSError as exc:
                raise self._write_error(exc, "could not create the log") from exc
            try:
                _fs.fchmod(fd, FILE_MODE)
                self._write(fd, data, 0)
                if self.durability == "fsync":
                    sync_dir(self.path.parent)
            except BaseException as exc:
                os.close(fd)
                # A log left behind after a failed create would make every retry fail with FileExistsError.
                with contextlib.suppress(OSError):
                    _fs.unlink(self.path)
                if isinstance(exc, OSError) and not isinstance(exc, LogWriteError):
                    raise self._write_error(exc, "could not create the log") from exc
                raise
            self._keep(fd)
            state = LogState()
            if not state.fold_lines(0, data, [header, *records]):
                state = fold_file(fd, os.fstat(fd), None)  # a tree (an import): its head needs the whole tree
            return self._after_write(fd, state)

    def _reclaim_failed_create(self) -> int:
        """Open a log that holds no complete line (what a failed create leaves) for writing.

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

    def append(self, records: Sequence[Record], *, expect_head: str | EllipsisType | None = ...) -> LogState:
        """Append records as one batch: one lock, one write, one sync.

        Events in the batch must continue the log's head (the first one's parent
        is the head, each later one's parent is the one before it).

        :param expect_head: if given, the head the log must have (for a batch without events, such as a
            rewind's head record, that only makes sense from a known head).
        :raises StaleHead: if the batch does not continue the current head, or the head is not ``expect_head``.
        :raises LogBusy: if the lock was not free in time.
        :raises LogWriteError: if the write or sync failed (the log is rolled back).
        :raises FileNotFoundError: if there is no log.
        """
        data = encode_records(list(records))
        with self._lock.held():
            fd = self._held_fd()
            state = fold_file(fd, os.fstat(fd), self._state)
            if state.torn_bytes:
                state = self._repair_torn_tail(fd, state)
            if expect_head is not ... and expect_head != state.head_id:
                raise StaleHead(self.path, expect_head, state.head_id)
            _check_continues(self.path, records, state.head_id)
            start = state.size
            self._write(fd, data, start)
            state = state.copy()
            if not state.fold_lines(start, data, list(records)):
                state = LogState()  # the batch made a fork or a gap: summarize the tree afresh
                self._state = state
                return self.state()
            return self._after_write(fd, state)

    def repair(self) -> LogState:
        """Repair a torn tail now (as the next append would) and return the new state."""
        with self._lock.held():
            fd = self._held_fd()
            state = fold_file(fd, os.fstat(fd), self._state)
            if state.torn_bytes:
                state = self._repair_torn_tail(fd, state)
            self.adopt(state)
            return state

    def _after_write(self, fd: int, state: LogState) -> LogState:
        st = os.fstat(fd)
        state.ino, state.ctime_ns, state.torn_bytes = st.st_ino, st.st_ctime_ns, st.st_size - state.size
        state.seen_ns = time.time_ns()
        with self._state_mutex:
            self._state = state
        return state

    def _held_fd(self) -> int:
        """The log's descriptor for appending, opened again if the path names another file now."""
        fd = self._fd
        if fd is not None:
            try:
                st = os.stat(self.path, follow_symlinks=False)
            except FileNotFoundError:
                self._drop_fd()
                raise
            if (st.st_ino, st.st_dev) == self._held:
                return fd
            self._drop_fd()  # replaced by rename (a sync tool, git): write to what is there now
        fd = self._open_for_append()
        self._keep(fd)
        return fd

    def _keep(self, fd: int) -> None:
        st = os.fstat(fd)
        self._fd, self._held = fd, (st.st_ino, st.st_dev)

    def _drop_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open_for_append(self) -> int:
        try:
            return open_regular(self.path, os.O_RDWR | os.O_APPEND)
        except (FileNotFoundError, UnsafeLogPath):
            raise
        except OSError as exc:
            raise self._write_error(exc, "could not open the log for appending") from exc

    def _write_error(self, exc: OSError, what: str) -> LogWriteError:
        return LogWriteError(exc.errno, f"{self.path}: {what} ({exc.strerror or exc}); nothing was written")

    def _repair_torn_tail(self, fd: int, state: LogState) -> LogState:
        """Cut off bytes after the last newline, keeping a copy in the trash first.

        :raises LogWriteError: if the copy or the cut failed (the log is as it was, or cut after the copy).
        """
        try:
            fragment = read_fd(fd, state.size)
            if self._trash_dir is not None and fragment:
                save_to_trash(
                    self._trash_dir,
                    f"{self.path.stem}.torn-{state.size}.bin",
                    fragment,
                    durable=self.durability == "fsync",
                )
            _fs.ftruncate(fd, state.size)
            sync_file(fd)
        except OSError as exc:
            raise self._write_error(exc, "could not repair the torn tail") from exc
        return fold_file(fd, os.fstat(fd), state)

    def _write(self, fd: int, data: bytes, good_size: int) -> None:
        try:
            _fs.write_all(fd, data)
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


def _check_continues(path: Path, records: Sequence[Record], head: str | None) -> None:
    expected = head
    for record in records:
        if record.k != KIND_EVENT:
            continue
        if record.parent != expected:
            raise StaleHead(path, record.parent, expected)
        expected = record.id
