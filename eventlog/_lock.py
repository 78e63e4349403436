"""The one lock: a thread mutex plus an ``flock`` on a lock file kept open.

Log appends, merges and the index all take it. The lock file holds no data and
may be deleted at any time (it lives in the disposable ``locks/`` folder); a
lock taken on a file that is no longer at its path would exclude nobody, so
after each acquire the path is checked to still name the file we locked, and
the file is opened again if not.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import filelock

from eventlog import _fs
from eventlog.durability import FILE_MODE, ensure_private_dir
from eventlog.errors import LogWriteError, UnsafeLogPath

__all__ = ["FileLock", "check_timeout"]

_MAX_TIMEOUT: Final = 365 * 24 * 3600.0
"""Longer waits than this overflow the clock arithmetic (``threading.Lock.acquire`` raises OverflowError)."""


def check_timeout(timeout: object) -> float:
    """Validate a lock timeout: seconds, finite, at most a year; negative means wait forever.

    :raises ValueError: for anything else.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ValueError(f"lock_timeout must be a number of seconds, not {timeout!r}")
    value = float(timeout)
    if math.isnan(value) or value > _MAX_TIMEOUT:
        raise ValueError(f"lock_timeout must be at most {_MAX_TIMEOUT:.0f} seconds (or negative: wait forever)")
    return value


class FileLock:
    """An exclusive lock between threads and processes, on ``path``.

    :param busy: builds the error raised when the lock is not free within the timeout.
    """

    def __init__(self, path: Path, timeout: float, busy: Callable[[], Exception]) -> None:
        self.path = path
        self.timeout = check_timeout(timeout)
        self._busy = busy
        self._mutex = threading.RLock()
        self._fd: int | None = None
        self._held: tuple[int, int] = (0, 0)
        """The (inode, device) of the open lock file."""
        self._depth = 0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the ``with`` block (re-entrant within one thread)."""
        wait = self.timeout if self.timeout >= 0 else -1
        if not self._mutex.acquire(timeout=wait):
            raise self._busy()
        try:
            if self._depth == 0:
                self._acquire()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    filelock.unlock_descriptor(self._fd)
        finally:
            self._mutex.release()

    def close(self) -> None:
        """Close the lock file (the next acquire opens it again)."""
        with self._mutex:
            if self._fd is not None and self._depth == 0:
                os.close(self._fd)
                self._fd = None

    def _acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        pause = 0.001
        while True:
            fd = self._open()
            if filelock.lock_descriptor(fd, blocking=False):
                if self._still_at_path(fd):
                    return
                filelock.unlock_descriptor(fd)
                self._drop()
                continue
            if self.timeout >= 0 and time.monotonic() + pause > deadline:
                raise self._busy()
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _open(self) -> int:
        if self._fd is not None:
            return self._fd
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            fd = _fs.open(self.path, flags, FILE_MODE)
        except FileNotFoundError:
            # Someone deleted locks/ (it is disposable): make it again, private as before.
            ensure_private_dir(self.path.parent)
            fd = _fs.open(self.path, flags, FILE_MODE)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
                raise UnsafeLogPath(
                    f"{self.path}: the lock file cannot be opened ({exc.strerror}); it must be a regular file: "
                    "remove whatever is at that path"
                ) from exc
            raise LogWriteError(
                exc.errno, f"{self.path}: could not open the lock file ({exc.strerror or exc}); nothing was written"
            ) from exc
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise UnsafeLogPath(f"{self.path} is not a regular file; remove it, it is only a lock file")
        self._fd, self._held = fd, (st.st_ino, st.st_dev)
        return fd

    def _still_at_path(self, fd: int) -> bool:
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return (st.st_ino, st.st_dev) == self._held

    def _drop(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
