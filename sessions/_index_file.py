"""The index file's format: its lines, the sorted part's header, and the file mapped for reading.

See :mod:`sessions.index` for how the index uses them, and ``docs/FORMAT.md``.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from typing import Final, TypeVar

import msgspec

from eventlog import LogState
from eventlog.summary import stamp_trusted
from sessions.models import StoredSession

__all__ = [
    "DECODE_ERRORS",
    "INDEX_FORMAT",
    "ROW_START",
    "Brief",
    "FullLine",
    "Header",
    "Listing",
    "ListingLine",
    "Row",
    "Stamp",
    "View",
    "brief_decoder",
    "decode_lines",
    "decode_row",
    "encoder",
    "full_decoder",
    "listing_decoder",
]

INDEX_FORMAT: Final = 3
ROW_START: Final = b'{"session":{"id":"'


class Row(msgspec.Struct, kw_only=True):
    """One line of the index: a session and the summary of its log."""

    session: StoredSession
    log: LogState


class Stamp(msgspec.Struct):
    """The part of a summary that says which bytes it covers (the rest of the line is skipped)."""

    size: int = 0
    ino: int = 0
    ctime_ns: int = 0
    seen_ns: int = 0
    torn_bytes: int = 0


class Brief(msgspec.Struct, gc=False):
    """A row as listing reads it: the session, and the stamp of the log bytes it describes.

    Any line of the file decodes as one (both None for a header or listing line), so the whole
    file is one ``decode_lines`` call.
    """

    session: StoredSession | None = None
    log: Stamp | None = None

    def covers(self, st: os.stat_result) -> bool:
        """True if the log (as ``stat`` saw it) holds exactly these bytes, and the stamp is not racy."""
        log = self.log
        return log is not None and stamp_trusted(st, log.ino, log.size + log.torn_bytes, log.ctime_ns, log.seen_ns)


class Listing(msgspec.Struct, kw_only=True):
    """A trusted listing of ``sessions/``: while the folder keeps this (inode, ctime), every log there has a row."""

    ino: int
    ctime_ns: int
    copies: dict[str, list[str]] = msgspec.field(default_factory=dict)
    """Sync conflict copies by session id, as names in ``sessions/``."""


class Header(msgspec.Struct, kw_only=True):
    index: int
    base: str
    """The byte length of the sorted part, header included, as 16 digits (fixed width: written before it is known)."""


class ListingLine(msgspec.Struct):
    listing: Listing


class FullLine(msgspec.Struct, kw_only=True):
    """Any line of the file, decoded whole (compaction)."""

    session: StoredSession | None = None
    log: LogState | None = None


encoder: Final = msgspec.json.Encoder()
row_decoder: Final = msgspec.json.Decoder(Row)
brief_decoder: Final = msgspec.json.Decoder(Brief)
header_decoder: Final = msgspec.json.Decoder(Header)
listing_decoder: Final = msgspec.json.Decoder(ListingLine)
full_decoder: Final = msgspec.json.Decoder(FullLine)
DECODE_ERRORS: Final = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)


class View:
    """The file mapped read-only, with where its sorted part ends."""

    def __init__(self, fd: int, st: os.stat_result) -> None:
        self.ino, self.size = st.st_ino, st.st_size
        self.listing: Listing | bool | None = False
        self.briefs: dict[str, Brief] | None = None
        """Every session's newest readable row, once decoded."""
        self.near: dict[tuple[str | None, str | None], dict[str, Row]] = {}
        """The rows of each place asked about, once found."""
        """The newest listing line, None if there is none; False until looked for."""
        self.map = mmap.mmap(fd, st.st_size, prot=mmap.PROT_READ) if st.st_size else None
        self.base_start = self.base_end = 0
        if self.map is not None and self.map[: len(b'{"index":')] == b'{"index":':
            end = self.map.find(b"\n")
            with contextlib.suppress(*DECODE_ERRORS, ValueError):
                header = header_decoder.decode(self.map[:end])
                if header.index == INDEX_FORMAT and end < int(header.base) <= st.st_size:
                    self.base_start, self.base_end = end + 1, int(header.base)

    @property
    def data(self) -> mmap.mmap | bytes:
        return self.map if self.map is not None else b""

    def lines(self) -> memoryview:
        """The complete lines (a torn last line left out), without copying them."""
        data = self.data
        return memoryview(data)[: data.rfind(b"\n") + 1]

    def close(self) -> None:
        if self.map is not None:
            with contextlib.suppress(BufferError):
                self.map.close()

    def search_base(self, session_id: str) -> Row | None:
        """The session's row in the sorted part, by binary search (None if it has none there)."""
        data, key = self.data, session_id.encode()
        lo, hi = self.base_start, self.base_end
        while lo < hi:
            mid = (lo + hi) // 2
            start = data.rfind(b"\n", lo, mid) + 1 if mid > lo else lo
            start = max(start, lo)
            stop = data.find(b"\n", start, hi)
            if stop < 0:
                stop = hi
            id_start = start + len(ROW_START)
            found = bytes(data[id_start : data.find(b'"', id_start, stop)])
            if found == key and data[start:id_start] == ROW_START:
                return decode_row(data, start)
            if found < key:
                lo = stop + 1
            else:
                hi = start
        return None


def decode_row(data: mmap.mmap | bytes, at: int) -> Row | None:
    stop = data.find(b"\n", at)
    try:
        return row_decoder.decode(data[at : stop if stop >= 0 else len(data)])
    except DECODE_ERRORS:
        return None


_L = TypeVar("_L")


def decode_lines(data: memoryview, decoder: msgspec.json.Decoder[_L]) -> list[_L]:
    """Decode every line; a damaged one is skipped, not the file."""
    try:
        return decoder.decode_lines(data)
    except DECODE_ERRORS:
        lines = []
        for line in bytes(data).split(b"\n"):
            with contextlib.suppress(*DECODE_ERRORS):
                if line.strip():
                    lines.append(decoder.decode(line))
        return lines
