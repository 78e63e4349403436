"""A resume's one pass over a clean, linear log: typed events and the log's summary together.

The general reader decodes each line's envelope (with the payload kept raw),
then types each payload: every payload byte is parsed twice. Here each line is
decoded in one go, as a tagged union keyed on the record's ``type``: one struct
per event type (with its payload typed) and one per fact the store writes
(payload raw). A chunk holding anything else (the header, an event type this
version does not know, a damaged line, a payload of the wrong shape) is decoded
the general way instead, so the answer is always the general reader's.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from pathlib import Path
from typing import Any, Final, NamedTuple, Union

import msgspec

from eventlog import KIND_EVENT, KIND_FACT, KIND_HEADER, LogState, Record
from eventlog.reader import iter_chunks, open_regular
from eventlog.record import check_utf8, decode_lines, decode_record
from sessions._mapping import FACT_ARCHIVED, FACT_METADATA, FACT_SERVER_SESSION
from sessions.events import EventBase, EventTypes

__all__ = ["Resumed", "read_linear"]


class Resumed(NamedTuple):
    """The typed events of a clean, linear log, its head, and its summary."""

    events: list[EventBase]
    head: Record | None
    state: LogState


def _line_struct(tag: str, data: Any, *, fact: bool) -> type[msgspec.Struct]:
    fields: list[tuple[str, Any, Any] | tuple[str, Any]] = [
        ("k", str),
        ("id", str),
        ("ts", dt.datetime),
        ("key" if fact else "parent", str | None, None),
        ("inv", str | None, None),
        ("data", data),
    ]
    name = f"_{'Fact' if fact else 'Event'}Line_{tag}"
    return msgspec.defstruct(name, fields, tag_field="type", tag=tag, kw_only=True, gc=False)


_HEADER_PEEK: Final = 1 << 16
"""Bytes read to find the header line; a longer header is read the general way."""
_FACT_LINES: Final = {
    _line_struct(tag, msgspec.Raw, fact=True): tag for tag in (FACT_METADATA, FACT_SERVER_SESSION, FACT_ARCHIVED)
}


@functools.lru_cache(maxsize=16)
def _decoder(types: EventTypes) -> msgspec.json.Decoder[Any]:
    """The one-pass decoder for a store's event types (built once per set of types)."""
    lines = [_line_struct(tag, cls, fact=False) for tag, cls in types.types.items()]
    return msgspec.json.Decoder(Union[tuple([*lines, *_FACT_LINES])])  # noqa: UP007 - built at run time


def read_linear(path: Path, types: EventTypes, known: LogState | None = None) -> Resumed | None:
    """Type every event of the log at ``path`` and summarize it, in one pass, a chunk at a time.

    :param known: a summary of the log, if the caller has one: when it still covers the file exactly,
        it is returned as the summary and the pass only types events (the fold is ~45% of the work).
    :returns: None if the log is not clean and linear (a damaged line, a torn
        tail, a fork, a gap): the caller then reads it the general way.
    :raises UnsafeLogPath: if ``path`` is a symlink or not a regular file.
    :raises FileNotFoundError: if there is no log.
    """
    events: list[EventBase] = []
    state = LogState()
    decoder = _decoder(types)
    head: Any = None
    fd = open_regular(path)
    try:
        st = os.fstat(fd)
        fold = not (
            known is not None and known.linear and not known.torn_bytes and not known.damaged and known.current(fd, st)
        )
        for offset, chunk in iter_chunks(fd, _after_header(fd, state), st.st_size):
            lines = _typed_lines(decoder, chunk)
            if lines is None:
                if not fold:  # the scratch summary only checks this chunk's chain: start it at our head
                    state.head_id, state.size = (head.id if head is not None else None), offset
                head = _general_chunk(offset, chunk, head, events, state, types)
                if head is False:
                    return None
                continue
            facts = False
            for line in lines:
                if line.k != KIND_EVENT:
                    facts = True
                    continue
                if line.parent != (head.id if head is not None else None):
                    return None
                head = line
                events.append(line.data)
            if not fold:
                state.size = offset + len(chunk)
            elif facts:
                _fold_with_facts(state, offset, chunk, lines)
            else:
                _fold_events(state, offset, chunk, lines)
        if state.size != st.st_size:
            return None  # a torn tail: let the tolerant reader report it
    finally:
        os.close(fd)
    if not fold:
        assert known is not None
        if known.head_id != (head.id if head is not None else None) or known.events != len(events):
            return None  # the summary does not describe these bytes after all: read the general way
        state = known
    state.torn_bytes = 0
    record = Record(k=KIND_EVENT, id=head.id, ts=head.ts, parent=head.parent) if head is not None else None
    return Resumed(events, record, state)


def _typed_lines(decoder: msgspec.json.Decoder[Any], chunk: bytearray) -> list[Any] | None:
    """The chunk's lines decoded by the union, or None if one does not fit it (then the general way).

    The union tells lines apart by ``type`` alone, so each line's ``k`` is checked against the kind of the
    struct it became: an event whose type is a fact's name, or a record of a kind this version does not
    know, must not pass for what it is not.
    """
    try:
        check_utf8(chunk)
        lines: list[Any] = decoder.decode_lines(chunk)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None
    for line in lines:
        if line.k != (KIND_FACT if type(line) in _FACT_LINES else KIND_EVENT):
            return None
    return lines


def _after_header(fd: int, state: LogState) -> int:
    """Fold the header line into ``state`` and return the offset after it (0 if the log starts otherwise).

    The header has no ``type``, so a chunk holding it would not fit the one-pass union: without this, a
    log smaller than one chunk would always be read the general way.
    """
    first = os.pread(fd, _HEADER_PEEK, 0)
    end = first.find(b"\n") + 1
    if not end:
        return 0
    try:
        record = decode_record(first[: end - 1])
    except (msgspec.DecodeError, RecursionError):
        return 0
    if record.k != KIND_HEADER or not state.fold_lines(0, first[:end], [record]):
        return 0
    return end


def _general_chunk(
    offset: int, chunk: bytearray, head: Any, events: list[Any], state: LogState, types: EventTypes
) -> Any:
    """Decode a chunk the general way; the new head, or False if the log is not clean and linear."""
    try:
        records = decode_lines(chunk)
    except (msgspec.DecodeError, RecursionError):
        return False
    for record in records:
        if record.k == KIND_EVENT:
            if record.parent != (head.id if head is not None else None):
                return False
            head = record
            events.append(types.deserialize(record.type or "", record.data))
    if not state.fold_lines(offset, chunk, records):
        return False
    return head


def _fold_events(state: LogState, offset: int, chunk: bytearray, lines: list[Any]) -> None:
    if lines:
        state.events += len(lines)
        state.head_id, state.head_ts = lines[-1].id, lines[-1].ts
    state.advance(offset, chunk)


def _fold_with_facts(state: LogState, offset: int, chunk: bytearray, lines: list[Any]) -> None:
    """Fold a chunk of events and facts: the facts need their offsets, so the lines are split once."""
    raw_lines = chunk.split(b"\n")
    if len(raw_lines) - 1 != len(lines):  # blank lines: take the general fold
        records = [_record(line, _FACT_LINES.get(type(line))) for line in lines]
        state.fold_lines(offset, chunk, records)
        return
    at = offset
    for line, raw in zip(lines, raw_lines, strict=False):
        length = len(raw) + 1
        if line.k == KIND_FACT:
            state.fold(_record(line, _FACT_LINES[type(line)]), at, length)
        else:
            state.events += 1
            state.head_id, state.head_ts = line.id, line.ts
        at += length
    state.advance(offset, chunk)


def _record(line: Any, fact: str | None) -> Record:
    if fact is not None:
        return Record(k=KIND_FACT, id=line.id, ts=line.ts, type=fact, key=line.key, data=line.data)
    return Record(k=KIND_EVENT, id=line.id, ts=line.ts, parent=line.parent)
