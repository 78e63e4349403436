"""The one mapper between log records and what the service hands out (stored and typed events)."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

import msgspec

from eventlog import KIND_EVENT, Record
from sessions.events import EVENT_TYPES, ConversationEvent, UnknownEvent, deserialize_event
from sessions.models import StoredEvent

__all__ = ["Conversation", "check_event", "event_record", "require_str", "stored_event", "typed_event"]


class Conversation(NamedTuple):
    """What :meth:`LocalSessionService.load_conversation` returns."""

    events: list[ConversationEvent | UnknownEvent]
    head_id: str | None
    last_event_at: dt.datetime | None


def typed_event(record: Record) -> ConversationEvent | UnknownEvent:
    return deserialize_event(record.type or "", record.data)


def check_event(record: Record) -> tuple[str, str] | None:
    event_type = record.type or ""
    if event_type not in EVENT_TYPES:
        return "unknown_type", f"event type '{event_type}' is unknown to this version; kept as is"
    typed = deserialize_event(event_type, bytes(record.data))
    if type(typed) is not EVENT_TYPES[event_type]:
        return "bad_payload", f"{event_type} event {record.id} has data of the wrong shape; kept as is"
    return None


def require_str(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value


def event_record(session_id: str, event: StoredEvent) -> Record:
    if event.session_id != session_id:
        raise ValueError(f"event {event.id} belongs to session {event.session_id}, not {session_id}")
    if event.created_at.tzinfo is None:
        raise ValueError(f"event {event.id}: created_at must be timezone-aware")
    data = event.event_data.encode() if isinstance(event.event_data, str) else event.event_data
    try:
        msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise ValueError(f"event {event.id}: event_data is not valid JSON text: {exc}") from exc
    if b"\n" in data or b"\r" in data:
        data = msgspec.json.format(data, indent=0)  # one record, one line
    return Record(
        k=KIND_EVENT,
        id=require_str(event.id, "event id"),
        ts=event.created_at.astimezone(dt.UTC),
        parent=event.parent_id,
        inv=require_str(event.invocation_id, "invocation_id"),
        type=require_str(event.event_type, "event_type"),
        data=msgspec.Raw(data),
    )


def stored_event(session_id: str, record: Record) -> StoredEvent:
    """The :class:`StoredEvent` an event record stands for."""
    return StoredEvent(
        id=record.id,
        session_id=session_id,
        parent_id=record.parent,
        invocation_id=record.inv or "",
        event_type=record.type or "",
        event_data=bytes(record.data).decode(),
        created_at=record.ts,
    )
