"""Streaming a clean log's events in one pass, for the common case of resuming.

Most logs are one straight chain with no damaged line. For those, events can
be converted as they are read, a chunk at a time, so the raw file is never held
whole beside what it decodes to. Anything else (a damaged line, a torn tail, a
fork, a gap, a duplicate) makes :func:`stream_linear_events` give up and return
None: the caller then reads the log with :func:`~eventlog.read_log`, which
reports damage and orders a tree.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Final, Generic, NamedTuple, TypeVar

import msgspec

from eventlog.logfile import _open_log
from eventlog.record import KIND_EVENT, Record, decode_lines

__all__ = ["LinearEvents", "stream_linear_events"]

CHUNK_BYTES: Final = 1 << 16
"""Bytes read at a time: small beside a long log, large enough that per-call costs vanish."""

_T = TypeVar("_T")


class LinearEvents(NamedTuple, Generic[_T]):
    """The converted events of a linear log, oldest first, and the last event's record."""

    events: list[_T]
    head: Record | None


def stream_linear_events(path: Path, convert: Callable[[Record], _T]) -> LinearEvents[_T] | None:
    """Convert every event of a clean, linear log, reading it a chunk at a time.

    :param convert: called once per event record, in file order.
    :returns: the converted events, or None if the log is not clean and linear.
    :raises UnsafeLogPath: if ``path`` is a symlink or not a regular file.
    :raises FileNotFoundError: if there is no log.
    """
    events: list[_T] = []
    head: Record | None = None
    fd = _open_log(path, os.O_RDONLY)
    try:
        carry = b""
        while chunk := os.read(fd, CHUNK_BYTES):
            buf = carry + chunk if carry else chunk
            end = buf.rfind(b"\n") + 1
            carry = buf[end:]
            if not end:
                continue
            try:
                records = decode_lines(memoryview(buf)[:end])
            except (msgspec.DecodeError, RecursionError):
                return None
            for record in records:
                if record.k == KIND_EVENT:
                    expected = head.id if head is not None else None
                    if record.parent != expected:
                        return None
                    head = record
                    events.append(convert(record))
        if carry:
            return None  # a torn tail: let the tolerant reader report it
    finally:
        os.close(fd)
    return LinearEvents(events, head)
