"""Conversation event types and their mapping to ``(event_type, event_data)``."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Final, TypeAlias

import msgspec

__all__ = [
    "EVENT_TYPES",
    "Compaction",
    "ConversationEvent",
    "EventBase",
    "OutOfBandOutput",
    "SkillInvocation",
    "SystemContext",
    "Text",
    "ToolCall",
    "ToolResult",
    "UnknownEvent",
    "UserMessage",
    "deserialize_event",
    "serialize_event",
]


# The type tag lives in the log record's ``type`` field, beside ``data``, as the
# reference keeps it in its own column; so the payload structs carry no tag.
# gc=False: a resumed conversation is ~100,000 of these, none part of a reference cycle
# (decoded JSON values cannot form one); untracked, they cost the cyclic GC nothing.
class EventBase(msgspec.Struct, frozen=True, gc=False):
    """Base of every conversation event (and of :class:`UnknownEvent`)."""

    TYPE: ClassVar[str]


class UserMessage(EventBase, frozen=True):
    """What the user typed."""

    TYPE: ClassVar[str] = "user_message"
    content: str


class Text(EventBase, frozen=True):
    """Text the assistant answered with."""

    TYPE: ClassVar[str] = "text"
    content: str


class ToolCall(EventBase, frozen=True):
    """The assistant asked to run a tool; ``input`` is any JSON value."""

    TYPE: ClassVar[str] = "tool_call"
    id: str
    name: str
    input: Any


class ToolResult(EventBase, frozen=True):
    """What a tool call returned."""

    TYPE: ClassVar[str] = "tool_result"
    tool_use_id: str
    content: str
    is_error: bool
    remote: bool = False
    content_length: int | None = None


class OutOfBandOutput(EventBase, frozen=True, kw_only=True):
    """Output produced outside the conversation (a shell command the user ran)."""

    TYPE: ClassVar[str] = "out_of_band_output"
    name: str
    command: str | None = None
    content: str


class SystemContext(EventBase, frozen=True):
    """Context the application added for the model."""

    TYPE: ClassVar[str] = "system_context"
    content: str


class SkillInvocation(EventBase, frozen=True, kw_only=True):
    """A skill the user or assistant invoked."""

    TYPE: ClassVar[str] = "skill_invocation"
    name: str
    arguments: str | None = None
    content: str


class Compaction(EventBase, frozen=True, kw_only=True):
    """A compaction checkpoint: the conversation before it, summarized.

    Everything before it stays in the log; ``resume(..., from_compaction=True)``
    and ``load_events(..., from_compaction=True)`` start here instead.
    """

    TYPE: ClassVar[str] = "compaction"
    summary: str
    tokens_before: int | None = None


class UnknownEvent(EventBase, frozen=True):
    """An event this version cannot type: a newer type, or data of the wrong shape.

    ``data`` is the stored JSON text, kept byte for byte.
    """

    TYPE: ClassVar[str] = ""

    type: str
    data: str


ConversationEvent: TypeAlias = (
    UserMessage | Text | ToolCall | ToolResult | OutOfBandOutput | SystemContext | SkillInvocation | Compaction
)

EVENT_TYPES: Final[dict[str, type[EventBase]]] = {
    cls.TYPE: cls
    for cls in (UserMessage, Text, ToolCall, ToolResult, OutOfBandOutput, SystemContext, SkillInvocation, Compaction)
}

_encoder: Final = msgspec.json.Encoder()
_decoders: Final = {tag: msgspec.json.Decoder(cls) for tag, cls in EVENT_TYPES.items()}


def serialize_event(event: EventBase) -> tuple[str, str]:
    """Return ``(event_type, event_data)``, the data as compact JSON text.

    :raises msgspec.EncodeError: if the event holds a value JSON cannot carry.
    :raises ValueError: if a tool call's input holds ``inf`` or ``nan``.
    """
    if isinstance(event, UnknownEvent):
        return event.type, event.data
    if isinstance(event, ToolCall):
        _check_finite(event.input)
    return event.TYPE, _encoder.encode(event).decode()


def _check_finite(value: Any) -> None:
    # JSON has no inf or nan: msgspec would write null, and the event would come back changed.
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"tool call input holds {value!r}, which JSON cannot carry")
    if isinstance(value, dict):
        for item in value.values():
            _check_finite(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_finite(item)


def deserialize_event(event_type: str, event_data: str | bytes | msgspec.Raw) -> ConversationEvent | UnknownEvent:
    """Type one stored event. Never raises for content: what cannot be typed is an :class:`UnknownEvent`.

    :param event_data: the JSON text, or its bytes (a log record's raw ``data`` is decoded without a copy).
    """
    decoder = _decoders.get(event_type)
    if decoder is not None:
        try:
            return decoder.decode(event_data)  # type: ignore[return-value]
        except (msgspec.DecodeError, RecursionError):
            pass
    text = event_data if isinstance(event_data, str) else bytes(event_data).decode("utf-8", "replace")
    return UnknownEvent(event_type, text)
