"""What the LangGraph saver writes into a thread's session log: two event types, and their JSON shapes.

A ``langgraph_checkpoint`` event holds one checkpoint whole (every channel's
value), a ``langgraph_writes`` event one task's pending writes against a
checkpoint. Values go through the saver's ``serde``; its bytes are stored as
JSON when its type is ``json``, base64 otherwise (docs/integrations/langgraph.md).
"""

from __future__ import annotations

import base64
import uuid
from typing import Any, ClassVar, Final

import msgspec

from sessions.events import EventBase

__all__ = [
    "THREAD_KEY",
    "CheckpointHead",
    "CheckpointSaved",
    "Serialized",
    "WriteSaved",
    "WritesHead",
    "WritesSaved",
    "encode",
    "mapped_session_id",
]

THREAD_KEY: Final = "langgraph.thread_id"
"""The session metadata key holding the thread id: it marks the session as a LangGraph thread."""

_THREAD_NAMESPACE: Final = uuid.UUID("6f0f3d9e-5a7c-5b1e-9c55-3c1b0e6a7d21")


def mapped_session_id(thread_id: str) -> str:
    """The session id of a thread whose id cannot be a session id (or whose id is taken): uuid5 of the thread id."""
    return str(uuid.uuid5(_THREAD_NAMESPACE, thread_id))


class Serialized(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """One ``serde.dumps_typed`` result: its ``type``, and its bytes as base64 (``b64``) or, for JSON, as ``json``."""

    type: str
    b64: str | None = None
    json: Any = None

    @classmethod
    def of(cls, typed: tuple[str, bytes]) -> Serialized:
        kind, data = typed
        if kind == "json":
            try:
                return cls(kind, json=msgspec.json.decode(data))
            except (msgspec.DecodeError, RecursionError):
                pass  # not JSON after all: base64 keeps it byte for byte
        return cls(kind, b64=base64.b64encode(data).decode("ascii"))

    def typed(self) -> tuple[str, bytes]:
        """The ``(type, bytes)`` pair ``serde.loads_typed`` takes."""
        if self.b64 is not None:
            return self.type, base64.b64decode(self.b64)
        return self.type, msgspec.json.encode(self.json)


class CheckpointSaved(EventBase, frozen=True, kw_only=True):
    """A checkpoint of namespace ``ns``: ``checkpoint`` is it without its channel values, which are beside it."""

    TYPE: ClassVar[str] = "langgraph_checkpoint"
    ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None = None
    metadata: dict[str, Any]
    """The checkpoint's metadata as plain JSON, so that ``list(filter=...)`` and ``jq`` read it without the serde."""
    checkpoint: Serialized
    channel_values: dict[str, Serialized]


class WriteSaved(msgspec.Struct, frozen=True, gc=False):
    """One pending write: its index in the task's writes (negative for the special channels), channel and value."""

    idx: int
    channel: str
    value: Serialized


class WritesSaved(EventBase, frozen=True, kw_only=True):
    """A task's pending writes against checkpoint ``checkpoint_id`` of namespace ``ns``."""

    TYPE: ClassVar[str] = "langgraph_writes"
    ns: str
    checkpoint_id: str
    task_id: str
    task_path: str = ""
    writes: list[WriteSaved]


class CheckpointHead(msgspec.Struct, frozen=True, gc=False):
    """The fields of a ``langgraph_checkpoint`` event a scan looks at (the values are skipped, not decoded)."""

    ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None = None
    metadata: dict[str, Any] = {}


class WritesHead(msgspec.Struct, frozen=True, gc=False):
    """The fields of a ``langgraph_writes`` event a scan looks at."""

    ns: str
    checkpoint_id: str


_encoder: Final = msgspec.json.Encoder()
DECODE_CHECKPOINT: Final = msgspec.json.Decoder(CheckpointSaved).decode
DECODE_WRITES: Final = msgspec.json.Decoder(WritesSaved).decode
DECODE_CHECKPOINT_HEAD: Final = msgspec.json.Decoder(CheckpointHead).decode
DECODE_WRITES_HEAD: Final = msgspec.json.Decoder(WritesHead).decode


def encode(event: CheckpointSaved | WritesSaved) -> str:
    """The event's ``data`` as JSON text."""
    return _encoder.encode(event).decode()
