"""One live conversation per session: a process *holds* the session it is talking in.

A hold is an ``flock`` on ``ROOT/locks/<session id>.hold``, kept by an open
descriptor for as long as the conversation runs. The kernel drops it when the
process ends, however it ends (exit, crash, SIGKILL), so a hold is never stale.
``find_resumable`` skips a session held by another process, so a second chat
started in the same folder does not write into the first one's conversation::

    with hold_session(store, manager.session_id):
        ...  # the conversation; another process's find_resumable passes this session by

The file holds the holder's process id, for messages. Checking a hold opens the
file read-only, so a read-only store can be asked too (nothing there is held).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

from sessions.errors import SessionBusy

if TYPE_CHECKING:
    from sessions.store import LocalSessionService

__all__ = ["HOLD_SUFFIX", "SessionHold", "held_elsewhere", "held_sessions", "hold_session"]

HOLD_SUFFIX: Final = ".hold"
_CHECK_GRACE: Final = 0.1

_mine: dict[tuple[str, str], SessionHold] = {}
"""The holds this process keeps, by (locks folder, session id): its own holds do not hide sessions from it."""
_mine_lock = threading.Lock()


class SessionHold:
    """This process's hold on one session; :meth:`release` (or leaving the ``with`` block) gives it up."""

    def __init__(self, locks_dir: Path, session_id: str) -> None:
        self.session_id = session_id
        self.path = locks_dir / f"{session_id}{HOLD_SUFFIX}"
        self._key = (str(locks_dir), session_id)
        self._fd = -1

    def acquire(self) -> Self:
        """Take the hold.

        :raises SessionBusy: if another process holds the session.
        :raises OSError: if the hold file cannot be made (a read-only store).
        """
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        deadline = time.monotonic() + _CHECK_GRACE
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                # Someone checking the hold takes a shared lock for a moment: wait that out, not a holder.
                if time.monotonic() < deadline:
                    time.sleep(0.005)
                    continue
                raise SessionBusy(
                    f"session {self.session_id} is open in another process ({_holder(self.path) or 'unknown'})"
                ) from None
            # A holder that released meanwhile unlinked the file we opened: lock the one at the path instead.
            try:
                same = os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        with _mine_lock:
            _mine[self._key] = self
        return self

    def release(self) -> None:
        """Give the hold up (removing its file while still locked, so no one is left holding a deleted one)."""
        if self._fd < 0:
            return
        with _mine_lock:
            _mine.pop(self._key, None)
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = -1

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def __enter__(self) -> Self:
        return self if self.held else self.acquire()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


def hold_session(service: LocalSessionService, session_id: str) -> SessionHold:
    """Hold ``session_id`` for this process (the session need not exist yet); use as a context manager.

    :raises SessionBusy: if another process holds it.
    """
    return SessionHold(service.locks_dir, session_id).acquire()


def held_elsewhere(locks_dir: Path, session_id: str) -> int | None:
    """The process id (0 if unknown) of another process that holds the session, or None if none does."""
    with _mine_lock:
        if (str(locks_dir), session_id) in _mine:
            return None
    path = locks_dir / f"{session_id}{HOLD_SUFFIX}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EACCES):
            return None
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder_pid(fd)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def held_sessions(service: LocalSessionService) -> dict[str, int]:
    """Every session another process holds now, with the holder's process id (0 if unknown)."""
    try:
        names = os.listdir(service.locks_dir)
    except FileNotFoundError:
        return {}
    held = {}
    for name in names:
        if name.endswith(HOLD_SUFFIX):
            session_id = name[: -len(HOLD_SUFFIX)]
            pid = held_elsewhere(service.locks_dir, session_id)
            if pid is not None:
                held[session_id] = pid
    return held


def _holder_pid(fd: int) -> int:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0)
    except (OSError, ValueError):
        return 0


def _holder(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return ""
    try:
        pid = _holder_pid(fd)
    finally:
        os.close(fd)
    return f"process {pid}" if pid else ""
