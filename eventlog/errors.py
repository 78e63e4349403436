"""Errors raised by the log layer."""

from __future__ import annotations

__all__ = [
    "EventLogError",
    "LogBusy",
    "LogWriteError",
    "StaleHead",
    "UnsafeLogPath",
]


class EventLogError(Exception):
    """Root of every error raised by :mod:`eventlog`."""


class LogBusy(EventLogError, TimeoutError):
    """The log's lock could not be taken in time; nothing was written."""


class StaleHead(EventLogError):
    """A batch was built on a head that is no longer the log's head; nothing was written."""

    def __init__(self, path: object, expected: str | None, actual: str | None) -> None:
        super().__init__(
            f"{path}: the batch extends head {expected!r} but the log's head is now "
            f"{actual!r} (another writer appended); reload the log and retry"
        )
        self.expected = expected
        self.actual = actual


class UnsafeLogPath(EventLogError, ValueError):
    """A log path is a symlink or not a regular file, so it is refused."""


class LogWriteError(EventLogError, OSError):
    """Writing or syncing the log failed.

    ``rolled_back`` is True when the log was cut back to its size before the
    batch, so none of the batch is in it.
    """

    def __init__(self, errno: int | None, message: str, *, rolled_back: bool = True) -> None:
        super().__init__(errno, message)
        self.rolled_back = rolled_back

    def __str__(self) -> str:
        return str(self.strerror)
