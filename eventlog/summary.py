"""A log's summary (:class:`LogState`) and the one fold that builds it.

A summary records which bytes of the log it covers (inode, size, ctime and the
last few bytes) and what they hold: the header, the head of the chain, how many
events, and where the newest value of each fact is. A log that grew is folded
from the old size on; anything else is read again. The index saves summaries,
so a new process extends one instead of reading the log.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from typing import Final

import msgspec

from eventlog.chain import head_and_count
from eventlog.reader import decode_each, iter_chunks
from eventlog.record import CHAIN_KINDS, KIND_EVENT, KIND_FACT, KIND_HEAD, KIND_HEADER, Record, decode_lines

__all__ = ["RACY_NS", "FactRef", "LogState", "fold_file", "stamp_trusted"]

INLINE_FACT_BYTES: Final = 96
"""Fact values up to this size are kept in the summary, larger ones by offset."""
RACY_NS: Final = 2_000_000_000
"""How close to a file's ctime a stamp must not be taken to be trusted alone (coarse clocks: 2 s on FAT)."""
TAIL_BYTES: Final = 32
"""How many of the last covered bytes a summary keeps to tell growth from replacement."""

_NOT_KEPT: Final = msgspec.Raw(b"")


class FactRef(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Where the newest value of one fact lives in the log, and when it was written."""

    ts: dt.datetime
    offset: int
    length: int
    # Not `Raw | None`: msgspec decodes that union from null only (msgspec#659).
    inline: msgspec.Raw = msgspec.field(default=_NOT_KEPT, name="value")
    """The raw JSON value when it is small, else empty; use :attr:`value`."""

    @property
    def value(self) -> msgspec.Raw | None:
        """The raw JSON value when it is small; otherwise None: read it at ``offset``."""
        return self.inline if len(self.inline) else None


class LogState(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A summary of a log's complete lines, cheap to extend as the log grows."""

    size: int = 0
    ino: int = 0
    ctime_ns: int = 0
    seen_ns: int = 0
    """When the stamp (inode, size, ctime) was taken: a change within one clock tick of it may not move ctime."""
    tail: bytes = b""
    """The last bytes before ``size`` (up to 32): a log only grew if its old part still ends with them."""
    header: Record | None = None
    head_id: str | None = None
    head_ts: dt.datetime | None = None
    events: int = 0
    linear: bool = True
    """False once the log holds a fork or a gap; then the head is the active head of the tree."""
    facts: dict[str, dict[str, FactRef]] = msgspec.field(default_factory=dict)
    damaged: int = 0
    torn_bytes: int = 0

    def fact(self, name: str, key: str = "") -> FactRef | None:
        return self.facts.get(name, {}).get(key)

    def copy(self) -> LogState:
        """A copy safe to fold into while others still hold this one."""
        return msgspec.structs.replace(self, facts={name: dict(keys) for name, keys in self.facts.items()})

    def covers(self, st: os.stat_result) -> bool:
        """True if the file (as ``stat`` saw it) has the stamp of the bytes this summary covers.

        A stamp taken within :data:`RACY_NS` of the file's ctime is *racy* (git's
        term): the file may have been cut and regrown to the same size within one
        tick of a coarse clock. Only :meth:`current` settles those.
        """
        return (st.st_ino, st.st_size, st.st_ctime_ns) == (self.ino, self.size + self.torn_bytes, self.ctime_ns)

    @property
    def racy(self) -> bool:
        return self.seen_ns - self.ctime_ns < RACY_NS

    def trusted(self, st: os.stat_result) -> bool:
        """True if ``st`` shows the stamp this summary covers and the stamp can be trusted on its own (one ``stat``)."""
        return stamp_trusted(st, self.ino, self.size + self.torn_bytes, self.ctime_ns, self.seen_ns)

    def current(self, fd: int, st: os.stat_result) -> bool:
        """True if the open file holds exactly the bytes this summary covers (the racy case checked by its tail)."""
        return self.covers(st) and (not self.racy or self.still_ends(fd))

    def fold(self, record: Record, offset: int, length: int) -> bool:
        """Fold one record in; False if the chain stopped being a straight line."""
        if record.k == KIND_EVENT:
            if record.parent != self.head_id:
                return False
            self.head_id = record.id
            self.head_ts = record.ts
            self.events += 1
        elif record.k == KIND_FACT and record.type is not None:
            ref = FactRef(ts=record.ts, offset=offset, length=length)
            if len(record.data) <= INLINE_FACT_BYTES:
                ref.inline = record.data
            # Within one log, the later line is the later write: a clock stepped back must not hide it.
            self.facts.setdefault(record.type, {})[record.key or ""] = ref
        elif record.k == KIND_HEADER and self.header is None:
            self.header = record
        elif record.k == KIND_HEAD:
            return False  # a rewind: the head and the branch's length need the tree
        return True

    def advance(self, offset: int, chunk: bytes | bytearray) -> None:
        """Cover ``chunk``, the lines at ``offset``, whose records the caller has folded."""
        self.size = offset + len(chunk)
        self.tail = (self.tail + bytes(chunk[-TAIL_BYTES:]))[-TAIL_BYTES:]

    def fold_lines(self, offset: int, chunk: bytes | bytearray, records: list[Record] | None = None) -> bool:
        """Fold a buffer of whole lines starting at byte ``offset``; False if the chain stopped being straight.

        :param records: the buffer already decoded with ``decode_lines``, if the caller has it.
        """
        if records is None:
            try:
                records = decode_lines(chunk)
            except (msgspec.DecodeError, RecursionError):
                records = None
        if records is not None and all(r.k == KIND_EVENT for r in records):
            for record in records:  # offsets matter only for facts and the header
                if not self.fold(record, 0, 0):
                    return False
        elif records is not None and chunk.count(b"\n") == len(records):
            at = offset  # one record a line (no blank lines): offsets by the line lengths
            for record, line in zip(records, chunk.split(b"\n"), strict=False):
                if not self.fold(record, at, len(line) + 1):
                    return False
                at += len(line) + 1
        else:
            # Damaged or blank lines: decode them one by one, skipping what cannot be read.
            found, offsets, lengths, damaged = decode_each(chunk, offset)
            self.damaged += len(damaged)
            for record, at, length in zip(found, offsets, lengths, strict=True):
                if not self.fold(record, at, length):
                    return False
        self.size = offset + len(chunk)
        self.tail = (self.tail + bytes(chunk[-TAIL_BYTES:]))[-TAIL_BYTES:]
        return True

    def still_ends(self, fd: int) -> bool:
        """Whether the bytes this summary covers are still the file's first ``size`` bytes (as far as the tail shows).

        ext4 gives a freed inode to the next new file, so a log that a sync tool
        or git replaced can come back with its old inode and a larger size but
        other bytes.
        """
        if not self.size:
            return True
        if len(self.tail) != min(self.size, TAIL_BYTES):
            return False
        return os.pread(fd, len(self.tail), self.size - len(self.tail)) == self.tail


def stamp_trusted(st: os.stat_result, ino: int, size: int, ctime_ns: int, seen_ns: int) -> bool:
    """True if a file (as ``stat`` saw it) still has the stamp (inode, size, ctime) taken at ``seen_ns``,
    and the stamp was not racy (see :meth:`LogState.covers`): the one freshness rule a ``stat`` alone can settle."""
    return (st.st_ino, st.st_size, st.st_ctime_ns) == (ino, size, ctime_ns) and seen_ns - ctime_ns >= RACY_NS


def fold_file(fd: int, st: os.stat_result, known: LogState | None) -> LogState:
    """The summary of the open log ``fd`` (``st`` its ``fstat``), extending ``known`` where it still applies.

    Reads only what ``known`` does not cover; memory stays bounded by a chunk,
    except for a log that is not a straight chain (its event links are kept).
    """
    if known is not None and known.current(fd, st):
        return known
    if known is None or st.st_ino != known.ino or st.st_size < known.size or not known.still_ends(fd):
        state = LogState()
    else:
        state = known.copy()
    for offset, chunk in iter_chunks(fd, state.size, st.st_size):
        if not state.fold_lines(offset, chunk):
            state = _fold_tree(fd, st.st_size)
            break
    state.torn_bytes = st.st_size - state.size
    state.ino, state.ctime_ns, state.seen_ns = st.st_ino, st.st_ctime_ns, time.time_ns()
    return state


def _fold_tree(fd: int, stop: int) -> LogState:
    """Summarize a log whose events are not one straight line (forks, gaps, duplicates)."""
    state = LogState(linear=False)
    events: list[Record] = []
    for offset, chunk in iter_chunks(fd, 0, stop):
        found, offsets, lengths, damaged = decode_each(chunk, offset)
        state.damaged += len(damaged)
        for record, at, length in zip(found, offsets, lengths, strict=True):
            if record.k in CHAIN_KINDS:
                events.append(Record(k=record.k, id=record.id, ts=record.ts, parent=record.parent))
            else:
                state.fold(record, at, length)
        state.size = offset + len(chunk)
        state.tail = (state.tail + bytes(chunk[-TAIL_BYTES:]))[-TAIL_BYTES:]
    head, state.events = head_and_count(events)
    if head is not None:
        state.head_id, state.head_ts = head.id, head.ts
    return state
