"""The record envelope: one JSON object per line of a log.

The log layer moves envelopes and keeps each payload as raw JSON bytes, so a
record written by a newer version is carried through untouched. Typed decoding
of payloads belongs to the layer above.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Callable
from typing import Final

import msgspec

__all__ = [
    "CHAIN_KINDS",
    "FORMAT_VERSION",
    "KIND_EVENT",
    "KIND_FACT",
    "KIND_HEAD",
    "KIND_HEADER",
    "KNOWN_KINDS",
    "Record",
    "decode_record",
    "encode_records",
    "new_id",
    "utcnow",
]

FORMAT_VERSION: Final = 1

KIND_HEADER: Final = "log"
"""First line of every log: its id, format version and creation attributes."""
KIND_EVENT: Final = "event"
"""A member of the event chain, linked to the one before it by ``parent``."""
KIND_FACT: Final = "fact"
"""A keyed value; within a log the later line of a key wins, across merged copies the larger ``(ts, id)``."""
KIND_HEAD: Final = "head"
"""A rewind: ``parent`` names the event that becomes the head (none: the empty conversation)."""

KNOWN_KINDS: Final = frozenset({KIND_HEADER, KIND_EVENT, KIND_FACT})
"""The kinds a tail read passes over; a head record (a rewind) makes it read the log whole."""
CHAIN_KINDS: Final = frozenset({KIND_EVENT, KIND_HEAD})
"""The kinds that decide the event tree."""

_NULL: Final = msgspec.Raw(b"null")


class Record(msgspec.Struct, kw_only=True, omit_defaults=True, frozen=True, gc=False):
    """One line of a log.

    :param k: the record kind (:data:`KIND_HEADER`, :data:`KIND_EVENT`, :data:`KIND_FACT`).
    :param id: a unique id (for the header, the log's own id).
    :param ts: when it was written, timezone-aware UTC.
    :param parent: for events, the id of the event before it.
    :param inv: the id of the writer invocation that appended it.
    :param type: the event type, or the fact's name.
    :param key: for facts with several keys, the key.
    :param v: for the header, the format version.
    :param data: the payload, kept as raw JSON bytes.
    """

    k: str
    id: str
    ts: dt.datetime
    parent: str | None = None
    inv: str | None = None
    type: str | None = None
    key: str | None = None
    v: int | None = None
    data: msgspec.Raw = _NULL


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(Record)


def encode_records(records: list[Record]) -> bytes:
    """Encode records as JSON lines, each ending in ``\\n``.

    :raises msgspec.EncodeError: if a record holds a value JSON cannot carry.
    """
    buf = bytearray()
    for record in records:
        _encoder.encode_into(record, buf, len(buf))
        buf += b"\n"
    return bytes(buf)


def decode_record(line: bytes | bytearray | memoryview) -> Record:
    """Decode one line (without its newline).

    :raises msgspec.DecodeError: if the line is not a valid record.
    """
    try:
        check_utf8(line)
        return _decoder.decode(line)
    except UnicodeDecodeError as exc:
        raise _invalid_utf8(exc) from exc


def decode_lines(buf: bytes | bytearray | memoryview) -> list[Record]:
    """Decode a buffer of whole lines at once; the fast path for clean logs.

    :raises msgspec.DecodeError: if any line is not a valid record.
    """
    try:
        check_utf8(buf)
        return _decoder.decode_lines(buf)
    except UnicodeDecodeError as exc:
        raise _invalid_utf8(exc) from exc


def check_utf8(buf: bytes | bytearray | memoryview) -> None:
    """Raise UnicodeDecodeError unless ``buf`` is UTF-8 (msgspec checks strings, not raw payloads)."""
    # msgspec checks the strings it decodes but not a Raw payload, so one bad byte in
    # ``data`` would only fail later, when a caller turns the payload into text.
    if isinstance(buf, bytes | bytearray) and buf.isascii():
        return
    str(buf, "utf-8")


def _invalid_utf8(exc: UnicodeDecodeError) -> msgspec.DecodeError:
    # Callers skip undecodable lines by catching DecodeError, so one bad byte must not escape them.
    return msgspec.DecodeError(f"the line is not valid UTF-8 ({exc.reason})")


def new_id() -> str:
    """A new UUIDv7 string: unique, and sortable by creation time."""
    return str(_uuid7()())


@functools.cache
def _uuid7() -> Callable[[], uuid.UUID]:
    # Imported on first use: uuid6 loads importlib.metadata (~25 ms), which commands that only read never need.
    from uuid6 import uuid7

    return uuid7


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC, with microseconds."""
    return dt.datetime.now(dt.UTC)
