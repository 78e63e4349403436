"""Errors raised by :mod:`sessions`."""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TypeVar

from eventlog import LogBusy, LogWriteError, StaleHead, UnsafeLogPath

__all__ = [
    "AmbiguousSessionId",
    "DamagedLogWarning",
    "ImportRefused",
    "InvalidSessionId",
    "SessionBusy",
    "SessionConflict",
    "SessionExists",
    "SessionHistoryMismatch",
    "SessionNotFound",
    "SessionReadError",
    "SessionWriteError",
    "SessionsError",
    "SyncMergeError",
    "UnsafeStorePath",
    "translate_log_errors",
]


class SessionsError(Exception):
    """Root of every error raised by :mod:`sessions`."""


class InvalidSessionId(SessionsError, ValueError):
    """A session id outside the grammar of :func:`sessions.protocol.check_session_id`; refused before use."""


class SessionNotFound(SessionsError, KeyError):
    """No session with this id exists in the store."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "session not found"


class SessionExists(SessionsError, FileExistsError):
    """A session with this id already exists."""


class SessionBusy(SessionsError, TimeoutError):
    """Another writer held the session's lock for longer than ``lock_timeout``; nothing was written."""


class SessionConflict(SessionsError):
    """The session's head moved (another process appended); nothing was written.

    Resume the session again to see the other writer's events, then retry.
    """


class SessionHistoryMismatch(SessionsError, ValueError):
    """``persist_events`` got a list that does not extend what was already persisted."""


class SessionWriteError(SessionsError, OSError):
    """The disk refused a write (full, I/O error); nothing acknowledged was lost."""


class SessionReadError(SessionsError, OSError):
    """The disk refused a read (an I/O error); nothing was changed. The message names the session and file."""


class UnsafeStorePath(SessionsError, ValueError):
    """A log or index is a symlink or not a regular file, so it is refused."""


class DamagedLogWarning(UserWarning):
    """A session log had lines that could not be read; they were skipped, not deleted."""


class SyncMergeError(SessionsError):
    """Conflict copies could not be merged now; nothing was lost, and they are still in place."""


class AmbiguousSessionId(SessionsError, ValueError):
    """A session id prefix matches more than one session."""


class ImportRefused(SessionsError, ValueError):
    """A file given to :func:`import_session` is not a log that can be imported; nothing was written."""


_T = TypeVar("_T")


def translate_log_errors(call: Callable[[], _T], session_id: str) -> _T:
    """Run a log-layer call, raising its errors as the session errors callers know."""
    try:
        return call()
    except StaleHead as exc:
        raise SessionConflict(
            f"session {session_id} was changed by another writer (its head is now {exc.actual}); "
            "nothing was written: resume the session again, then retry"
        ) from exc
    except LogBusy as exc:
        raise SessionBusy(f"session {session_id} is busy: {exc}") from exc
    except LogWriteError as exc:
        raise SessionWriteError(exc.errno, f"session {session_id}: {exc}") from exc
    except UnsafeLogPath as exc:
        raise UnsafeStorePath(str(exc)) from exc
    except (FileNotFoundError, FileExistsError):
        raise  # callers say which session is missing, or that it exists
    except OSError as exc:
        if exc.errno == errno.EROFS:
            raise SessionWriteError(
                exc.errno,
                f"session {session_id}: the store is on a read-only file system ({exc.filename or 'its log'}); "
                "nothing was changed: a backup or snapshot can be read, not written",
            ) from exc
        raise SessionReadError(
            exc.errno,
            f"session {session_id}: {exc.strerror or exc} reading {exc.filename or 'its log'}; "
            "nothing was changed: check the disk, then retry",
        ) from exc
