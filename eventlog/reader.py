"""Reading logs: open safely, split off a torn tail, decode tolerantly, stream.

Reading never takes a lock: only whole lines (ending in ``\\n``) are decoded, so
a reader racing a writer sees a prefix of the writer's batch at worst. Bytes
after the last newline are a *torn tail* (a crash mid-write, or a writer still
at work).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from types import EllipsisType
from typing import Final, Generic, NamedTuple, TypeVar

import msgspec

from eventlog import _fs
from eventlog.errors import UnsafeLogPath
from eventlog.record import KIND_EVENT, KIND_HEAD, KIND_HEADER, KNOWN_KINDS, Record, decode_lines, decode_record

__all__ = [
    "CHUNK_BYTES",
    "Damage",
    "LinearEvents",
    "LogRead",
    "decode_each",
    "iter_chunks",
    "open_regular",
    "read_bytes",
    "read_header",
    "read_log",
    "read_record_at",
    "read_tail_events",
    "split_torn",
    "stream_linear_events",
]

CHUNK_BYTES: Final = 1 << 20
"""Bytes read at a time when streaming: small beside a long log, large enough that per-call costs vanish."""


class Damage(msgspec.Struct, frozen=True):
    """A line that could not be read, found at byte ``offset``."""

    offset: int
    length: int
    reason: str


class LogRead(msgspec.Struct, kw_only=True):
    """Everything read from a log: its records in file order and what was damaged."""

    records: list[Record]
    damaged: list[Damage]
    torn: Damage | None
    size: int
    """Bytes of complete lines; a torn tail starts here."""


def open_regular(path: Path | str, flags: int = os.O_RDONLY) -> int:
    """Open a log-like file, refusing symlinks and anything that is not a regular file.

    The open never blocks (a FIFO named like a log would otherwise hang every
    reader), and the check is made on the open descriptor, not on a second look
    at the path.

    :raises UnsafeLogPath: if ``path`` is a symlink or not a regular file.
    :raises FileNotFoundError: if there is nothing at ``path``.
    """
    try:
        fd = _fs.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeLogPath(
                f"{path} is a symlink; logs must be regular files (replace it with the file itself)"
            ) from exc
        if exc.errno in (errno.ENXIO, errno.EISDIR, errno.ENODEV, errno.EOPNOTSUPP):
            raise UnsafeLogPath(f"{path} is not a regular file; move it out of the store") from exc
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnsafeLogPath(f"{path} is not a regular file; move it out of the store")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes(path: Path | str, start: int = 0) -> bytes:
    """The file's bytes from ``start`` on (see :func:`open_regular` for what is refused)."""
    fd = open_regular(path)
    try:
        return read_fd(fd, start)
    finally:
        os.close(fd)


def read_fd(fd: int, start: int, stop: int | None = None) -> bytes:
    """Bytes ``start`` to ``stop`` (the end if None) of an open file, read with ``pread``."""
    chunks = []
    while stop is None or start < stop:
        want = CHUNK_BYTES if stop is None else min(stop - start, CHUNK_BYTES)
        chunk = _fs.pread(fd, want, start)
        if not chunk:
            break
        chunks.append(chunk)
        start += len(chunk)
    return b"".join(chunks)


def read_record_at(path: Path | str, offset: int, length: int) -> Record | None:
    """The record on the line at ``offset`` (``length`` bytes with its newline): one bounded read.

    :returns: None if those bytes are not a record (the log changed, or the line is damaged).
    """
    fd = open_regular(path)
    try:
        line = read_fd(fd, offset, offset + length)
    finally:
        os.close(fd)
    try:
        return decode_record(line.rstrip(b"\n"))
    except (msgspec.DecodeError, RecursionError):
        return None


def read_header(path: Path | str, limit: int = 1 << 16) -> Record | None:
    """The log's header (its first line), reading at most ``limit`` bytes; None if it has none."""
    fd = open_regular(path)
    try:
        first = read_fd(fd, 0, limit).split(b"\n", 1)
    finally:
        os.close(fd)
    if len(first) < 2:
        return None
    try:
        record = decode_record(first[0])
    except (msgspec.DecodeError, RecursionError):
        return None
    return record if record.k == KIND_HEADER else None


def iter_chunks(fd: int, start: int, stop: int | None = None) -> Iterator[tuple[int, bytearray]]:
    """Whole lines of an open file from ``start``, a chunk at a time, each with its offset.

    Stops at the last newline before ``stop`` (or the end). Each chunk is read
    straight into a buffer of its own (decoded values may keep a view of it);
    only the part line carried to the next chunk is copied, and a line longer
    than a chunk grows its buffer by doubling, so the cost stays linear.
    """
    carry: bytes | bytearray = b""
    at = start  # the file offset of the chunk's first byte (the carried part line)
    pos = start  # where the next read starts
    want = CHUNK_BYTES
    while stop is None or pos < stop:
        size = want if stop is None else min(want, stop - pos)
        buf = bytearray(len(carry) + size)
        buf[: len(carry)] = carry
        got = _fs.pread_into(fd, memoryview(buf)[len(carry) :], pos)
        if not got:
            break
        pos += got
        del buf[len(carry) + got :]
        end = buf.rfind(b"\n") + 1
        if not end:
            carry, want = buf, max(want, len(buf))  # no line ends yet: read on, in a bigger buffer
            continue
        carry, want = bytes(buf[end:]), CHUNK_BYTES
        del buf[end:]
        yield at, buf
        at += end


def decode_each(buf: bytes | bytearray, base: int) -> tuple[list[Record], list[int], list[int], list[Damage]]:
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


TAIL_BLOCK: Final = 1 << 16
"""The first block a tail read takes from the end; each further block is twice as large."""


def _lines_backward(buf: bytes) -> Iterator[bytes]:
    """The lines of ``buf`` (which ends with a newline), newest first, cut one at a time.

    A tail read usually wants a few lines of a large block: splitting all of it would cost more.
    """
    end = len(buf) - 1
    while end >= 0:
        start = buf.rfind(b"\n", 0, end) + 1
        yield buf[start:end]
        end = start - 1


def read_tail_events(
    path: Path | str,
    *,
    last: int | None = None,
    stop: Callable[[Record], bool] | None = None,
    head: str | EllipsisType | None = ...,
) -> list[Record] | None:
    """The events at the end of the active branch, oldest first, read backward from the log's end.

    Reads until it has the ``last`` newest events (all of them if None), or the
    newest event ``stop`` accepts (included), or the start of the file, so the
    cost is that of what is returned (with the facts between). Bytes after the
    last newline (a torn tail) are left out.

    :param head: the active head, if the caller knows it (a summary of the whole
        log does; see :mod:`eventlog.chain`). Then the branch is followed back
        from it by parent links, passing over events off the branch (those a
        rewind abandoned), so a rewound log is read backward too. Without it the
        events read must be one straight chain from the end of the file.
    :returns: None if what was read cannot be answered this way (a damaged
        line, a fork, a gap, a repeated id, a rewind without ``head``, or a
        record of a kind this reader does not know): the caller then reads the
        log the general way.
    :raises UnsafeLogPath: if ``path`` is a symlink or not a regular file.
    :raises FileNotFoundError: if there is no log.
    """
    if head is None:
        return []  # the empty conversation (rewound to the start)
    newest_first: list[Record] = []
    wanted: str | EllipsisType | None = head  # with a head: the id of the next (older) event of the branch
    seen: set[str] = set()
    fd = open_regular(path)
    try:
        pos = os.fstat(fd).st_size
        carry = b""  # the start of a line whose beginning lies before the block read last
        block = TAIL_BLOCK
        torn = True  # until the first newline from the end is found, bytes are a torn tail
        while pos > 0:
            start = max(0, pos - block)
            buf = read_fd(fd, start, pos) + carry
            pos, block = start, block * 2
            if torn:
                cut = buf.rfind(b"\n") + 1
                if not cut and start:
                    carry = buf
                    continue
                buf, torn = buf[:cut], False
            # buf ends with a newline here, so when a line is longer than the blocks so far,
            # all of buf is carried on and the next, larger block is read before it.
            first = buf.find(b"\n") + 1 if start else 0
            carry, lines = buf[:first], buf[first:]
            for line in _lines_backward(lines):
                if not line.strip():
                    continue
                try:
                    record = decode_record(line)
                except (msgspec.DecodeError, RecursionError):
                    return None
                if record.k == KIND_HEAD:
                    if head is ...:
                        return None  # a rewind: which branch is active needs the caller's summary
                    continue
                if record.k != KIND_EVENT:
                    if record.k not in KNOWN_KINDS:
                        return None
                    continue
                if record.id in seen:
                    return None  # a repeated id (a merge's duplicate): which line counts needs the whole log
                seen.add(record.id)
                if head is ...:
                    if newest_first and newest_first[-1].parent != record.id:
                        return None
                elif record.id != wanted:
                    continue  # off the branch: abandoned by a rewind
                newest_first.append(record)
                wanted = record.parent
                if (last is not None and len(newest_first) >= last) or (stop is not None and stop(record)):
                    newest_first.reverse()
                    return newest_first
                if wanted is None and head is not ...:
                    newest_first.reverse()
                    return newest_first  # the root of the branch
    finally:
        os.close(fd)
    if (newest_first and newest_first[-1].parent is not None) or (head is not ... and not newest_first):
        return None  # the branch names an event that is not in the log (before it): a gap
    newest_first.reverse()
    return newest_first


_T = TypeVar("_T")


class LinearEvents(NamedTuple, Generic[_T]):
    """The converted events of a linear log, oldest first, and the last event's record."""

    events: list[_T]
    head: Record | None


def stream_linear_events(
    path: Path,
    convert: Callable[[Record], _T],
) -> LinearEvents[_T] | None:
    """Convert every event of a clean, linear log, reading it a chunk at a time.

    :param convert: called once per event record, in file order.
    :returns: the converted events, or None if the log is not clean and linear.
    :raises UnsafeLogPath: if ``path`` is a symlink or not a regular file.
    :raises FileNotFoundError: if there is no log.
    """
    events: list[_T] = []
    head: Record | None = None
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        covered = 0
        for offset, chunk in iter_chunks(fd, 0, size):
            try:
                records = decode_lines(chunk)
            except (msgspec.DecodeError, RecursionError):
                return None
            for record in records:
                if record.k == KIND_EVENT:
                    if record.parent != (head.id if head is not None else None):
                        return None
                    head = record
                    events.append(convert(record))
            covered = offset + len(chunk)
        if covered != size:
            return None  # a torn tail: let the tolerant reader report it
    finally:
        os.close(fd)
    return LinearEvents(events, head)
