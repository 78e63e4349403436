"""The physical floors: the least work any store of this format must do.

Persist: ``os.write`` of the same encoded lines to an open file, then ``fsync``
(for durability ``fsync``). Resume: read the same log file and decode it with
``msgspec`` straight into typed structs (the envelope, then each payload by its
type), with none of the library's checks, ordering or fallbacks.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import msgspec

from benchmarks.peers.base import Persist, SessionSpec, Store
from benchmarks.peers.ours import OursPeer
from eventlog import KIND_EVENT, Record, encode_records, new_id, utcnow
from sessions import ConversationEvent, UnknownEvent, serialize_event
from sessions.events import EVENT_TYPES

__all__ = ["FloorPeer", "decode_log"]


class _Envelope(msgspec.Struct):
    k: str
    type: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"null")
    id: str = ""
    ts: dt.datetime | None = None
    parent: str | None = None


_envelopes: Final = msgspec.json.Decoder(_Envelope)
_payloads: Final = {tag: msgspec.json.Decoder(cls) for tag, cls in EVENT_TYPES.items()}


def decode_log(buf: bytes) -> list[Any]:
    """Every event of a log file as a typed struct: the floor of any resume."""
    out: list[Any] = []
    for envelope in _envelopes.decode_lines(buf):
        if envelope.k == KIND_EVENT:
            decoder = _payloads.get(envelope.type or "")
            out.append(decoder.decode(envelope.data) if decoder is not None else UnknownEvent("", ""))
    return out


class FloorPeer:
    name = "floor"
    description = "raw os.write+fsync of the same bytes; raw msgspec typed decode of the same log file"

    def persister(self, root: Path, durability: str) -> Persist:
        fd = os.open(root / "floor.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        parent: str | None = None

        def prepare(turn: list[ConversationEvent]) -> Callable[[], None]:
            nonlocal parent
            records = []
            for event in turn:
                event_type, data = serialize_event(event)
                record = Record(
                    k=KIND_EVENT,
                    id=new_id(),
                    ts=utcnow(),
                    parent=parent,
                    inv=new_id(),
                    type=event_type,
                    data=msgspec.Raw(data.encode()),
                )
                parent = record.id
                records.append(record)
            lines = encode_records(records)

            def write() -> None:
                os.write(fd, lines)
                if durability == "fsync":
                    os.fsync(fd)

            return write

        return prepare

    def resumer(self, root: Path, events: list[ConversationEvent]) -> Callable[[], list[Any]]:
        # The same log file this library writes, written by it.
        OursPeer().resumer(root, events)
        (path,) = (root / "sessions").iterdir()

        def resume() -> list[Any]:
            with open(path, "rb") as f:
                return decode_log(f.read())

        return resume

    def populate(self, root: Path, specs: list[SessionSpec]) -> None:
        raise NotImplementedError("no floor for store-wide queries")

    def open_store(self, root: Path) -> Store:
        raise NotImplementedError("no floor for store-wide queries")
