"""Conversation event types, the registry that types them, and their mapping to ``(event_type, event_data)``."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, Final, TypeAlias

import msgspec

__all__ = [
    "EVENT_TYPES",
    "STANDARD_TYPES",
    "Attachment",
    "Compaction",
    "ConversationEvent",
    "EventBase",
    "EventTypes",
    "OutOfBandOutput",
    "Reasoning",
    "SkillInvocation",
    "SystemContext",
    "Text",
    "ToolCall",
    "ToolResult",
    "UnknownEvent",
    "UserMessage",
    "deserialize_event",
    "serialize_event",
    "standard_events",
]


# The type tag lives in the log record's ``type`` field, beside ``data``, as the
# reference keeps it in its own column; so the payload structs carry no tag.
# gc=False: a resumed conversation is ~100,000 of these, none part of a reference cycle
# (decoded JSON values cannot form one); untracked, they cost the cyclic GC nothing.
# omit_defaults: a field left at its default is not written, so new optional fields cost old events nothing
# and old logs (without them) load unchanged.
class EventBase(msgspec.Struct, frozen=True, gc=False, omit_defaults=True, kw_only=True):
    """Base of every conversation event: the standard ones, an application's own, and :class:`UnknownEvent`.

    An application's event type subclasses it, names its tag in ``TYPE`` and is
    registered with ``LocalSessionService.open(root, event_types=[...])``.
    """

    TYPE: ClassVar[str]
    meta: dict[str, Any] | None = None
    """Anything the application wants kept with the event without a new type: ``model``, ``usage``
    (token counts), ``stop_reason``, ``cost``... (docs/FORMAT.md lists the conventional keys)."""

    def standard(self) -> Sequence[EventBase]:
        """This event as standard events, for views (``show``, markdown export); itself by default.

        An imported tool record (see :mod:`sessions.importers`) maps itself to the
        messages, tool calls and reasoning it holds.
        """
        return (self,)


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


class Reasoning(EventBase, frozen=True):
    """The model's reasoning (thinking) before it answered.

    ``text`` is what the model showed (may be empty); ``signature`` the provider's
    proof that the text is its own, ``encrypted`` reasoning the provider returned
    only encrypted, to send back on the next turn; ``summary`` its summaries.
    """

    TYPE: ClassVar[str] = "reasoning"
    text: str = ""
    signature: str | None = None
    encrypted: str | None = None
    summary: list[str] | None = None


class Attachment(EventBase, frozen=True):
    """A file in the conversation (an image, a document): its bytes inline, or a URI to find it by.

    Bytes are written as base64 in the log, so keep large files elsewhere and give a ``uri``.
    """

    TYPE: ClassVar[str] = "attachment"
    name: str
    media_type: str
    data: bytes | None = None
    uri: str | None = None


class UnknownEvent(EventBase, frozen=True):
    """An event this version cannot type: a newer type, or data of the wrong shape.

    ``data`` is the stored JSON text, kept byte for byte.
    """

    TYPE: ClassVar[str] = ""

    type: str
    data: str


ConversationEvent: TypeAlias = (
    UserMessage
    | Text
    | ToolCall
    | ToolResult
    | OutOfBandOutput
    | SystemContext
    | SkillInvocation
    | Compaction
    | Reasoning
    | Attachment
)

_STANDARD: Final[tuple[type[EventBase], ...]] = (
    UserMessage,
    Text,
    ToolCall,
    ToolResult,
    OutOfBandOutput,
    SystemContext,
    SkillInvocation,
    Compaction,
    Reasoning,
    Attachment,
)
EVENT_TYPES: Final[Mapping[str, type[EventBase]]] = MappingProxyType({cls.TYPE: cls for cls in _STANDARD})
"""The standard event types by tag."""

_encoder: Final = msgspec.json.Encoder()

RESERVED_TAGS: Final = frozenset({"metadata", "server_session_id", "archived"})
"""The names of the store's facts (a log line of ``k = "fact"`` carries one as its ``type``): no event type
may take one, so a fast reader telling lines apart by ``type`` never mistakes one for the other."""


class EventTypes:
    """The event types one store types events as: the standard ones plus an application's own.

    :raises TypeError: if a class is not a subclass of :class:`EventBase` with a ``TYPE`` string.
    :raises ValueError: if a tag is empty or already names another class.
    """

    def __init__(self, extra: Iterable[type[EventBase]] = ()) -> None:
        types: dict[str, type[EventBase]] = dict(EVENT_TYPES)
        for cls in extra:
            if not (isinstance(cls, type) and issubclass(cls, EventBase)) or cls is UnknownEvent:
                raise TypeError(f"event type {cls!r} must be a subclass of sessions.EventBase")
            tag = getattr(cls, "TYPE", None)
            if not isinstance(tag, str) or not tag:
                raise ValueError(f"event type {cls.__qualname__} must name its tag in TYPE (a non-empty str)")
            if tag in RESERVED_TAGS:
                raise ValueError(f"event type {cls.__qualname__}: the tag {tag!r} names a session fact; pick another")
            other = types.get(tag)
            if other is not None and other is not cls:
                raise ValueError(
                    f"event type {cls.__qualname__} has the tag {tag!r} of {other.__module__}.{other.__qualname__}; "
                    "give it another TYPE"
                )
            types[tag] = cls
        self.types: Final[Mapping[str, type[EventBase]]] = MappingProxyType(types)
        self.application: Final = tuple(cls for tag, cls in types.items() if tag not in EVENT_TYPES)
        self._decoders = {tag: msgspec.json.Decoder(cls) for tag, cls in types.items()}

    def __contains__(self, cls: object) -> bool:
        """Whether ``cls`` (a class) is one of these types."""
        return isinstance(cls, type) and self.types.get(getattr(cls, "TYPE", ""), None) is cls

    def deserialize(self, event_type: str, event_data: str | bytes | msgspec.Raw) -> EventBase:
        """Type one stored event. Never raises for content: what cannot be typed is an :class:`UnknownEvent`."""
        decoder = self._decoders.get(event_type)
        if decoder is not None:
            try:
                event: EventBase = decoder.decode(event_data)
                return event
            except (msgspec.DecodeError, RecursionError):
                pass
        text = event_data if isinstance(event_data, str) else bytes(event_data).decode("utf-8", "replace")
        return UnknownEvent(event_type, text)

    def check(self, event: EventBase) -> None:
        """Refuse to persist an event of a type these do not know (it would come back as :class:`UnknownEvent`).

        :raises ValueError: naming the type and how to register it.
        """
        cls = type(event)
        if cls is not UnknownEvent and cls not in self:
            raise ValueError(
                f"event type {cls.__module__}.{cls.__qualname__} ({getattr(cls, 'TYPE', '?')!r}) is not registered "
                "with this store: pass it in LocalSessionService.open(root, event_types=[...])"
            )


STANDARD_TYPES: Final = EventTypes()
"""The standard event types alone: how a store opened without ``event_types`` types events."""


def serialize_event(event: EventBase) -> tuple[str, str]:
    """Return ``(event_type, event_data)``, the data as compact JSON text.

    :raises msgspec.EncodeError: if the event holds a value JSON cannot carry.
    :raises ValueError: if a tool call's input or an event's ``meta`` holds ``inf`` or ``nan``.
    """
    if isinstance(event, UnknownEvent):
        return event.type, event.data
    if isinstance(event, ToolCall):
        _check_finite(event.input)
    if event.meta is not None:
        _check_finite(event.meta)
    return event.TYPE, _encoder.encode(event).decode()


def _check_finite(value: Any) -> None:
    # JSON has no inf or nan: msgspec would write null, and the event would come back changed.
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"the event holds {value!r}, which JSON cannot carry")
    if isinstance(value, dict):
        for item in value.values():
            _check_finite(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_finite(item)


def deserialize_event(event_type: str, event_data: str | bytes | msgspec.Raw) -> EventBase:
    """Type one stored event as a standard type. Never raises for content: what cannot be typed is an
    :class:`UnknownEvent`. A store opened with ``event_types`` types an application's own through its
    ``deserialize_event`` method.

    :param event_data: the JSON text, or its bytes (a log record's raw ``data`` is decoded without a copy).
    """
    return STANDARD_TYPES.deserialize(event_type, event_data)


def standard_events(events: Iterable[EventBase]) -> list[EventBase]:
    """The events as standard ones, for reading (see :meth:`EventBase.standard`)."""
    return [standard for event in events for standard in event.standard()]
