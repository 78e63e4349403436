"""The one mapper between log records and what the service hands out (stored and typed events)."""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple

import msgspec

from eventlog import KIND_EVENT, KIND_FACT, FactRef, LogState, Record, new_id
from sessions.events import EventBase, EventTypes
from sessions.models import StoredEvent, StoredSession

__all__ = [
    "FACT_ARCHIVED",
    "FACT_METADATA",
    "FACT_SERVER_SESSION",
    "Conversation",
    "Place",
    "check_json",
    "check_labels",
    "event_checker",
    "event_record",
    "fact_record",
    "loads_json",
    "loads_str",
    "path_text",
    "place_of",
    "placed",
    "require_str",
    "stored_event",
    "to_session",
]

FACT_METADATA: Final = "metadata"
FACT_SERVER_SESSION: Final = "server_session_id"
FACT_ARCHIVED: Final = "archived"

_json_encoder: Final = msgspec.json.Encoder()
_any_decoder: Final = msgspec.json.Decoder(Any)


class Conversation(NamedTuple):
    """What :meth:`LocalSessionService.load_conversation` returns."""

    events: list[EventBase]
    head_id: str | None
    last_event_at: dt.datetime | None


def event_checker(types: EventTypes, unknown: dict[str, int]) -> Callable[[Record], tuple[str, str] | None]:
    """A ``verify`` check for events: a payload of the wrong shape is a finding; an event of a type
    nobody registered is not damage, only counted (by type) into ``unknown``."""

    def check(record: Record) -> tuple[str, str] | None:
        event_type = record.type or ""
        cls = types.types.get(event_type)
        if cls is None:
            unknown[event_type] = unknown.get(event_type, 0) + 1
            return None
        if type(types.deserialize(event_type, bytes(record.data))) is not cls:
            return "bad_payload", f"{event_type} event {record.id} has data of the wrong shape; kept as is"
        return None

    return check


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


class Place(msgspec.Struct, frozen=True):
    """What a session's header says: where it belongs, when it began, and what it was forked from."""

    directory: str | None
    git_root: str | None
    created_at: dt.datetime
    forked_from: str | None = None
    fork_event_id: str | None = None
    labels: dict[str, str] = msgspec.field(default_factory=dict)


def path_text(path: str | None) -> str | None:
    """A directory name as stored: itself, or, if it holds bytes that are not UTF-8 (which Python gives as
    surrogate escapes and JSON cannot carry), those bytes written as ``\\xNN``."""
    if path is None:
        return None
    try:
        path.encode()
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", "backslashreplace")
    return path


def place_of(header: Record) -> Place:
    """The place a header records (anything but a string directory or git root reads as None)."""
    try:
        attributes = _any_decoder.decode(header.data)
    except (msgspec.DecodeError, RecursionError):
        attributes = {}
    if not isinstance(attributes, dict):
        attributes = {}

    def text(name: str) -> str | None:
        value = attributes.get(name)
        return value if isinstance(value, str) else None

    labels = attributes.get("labels")
    if not isinstance(labels, dict):
        labels = {}
    return Place(
        text("directory"),
        text("git_root"),
        header.ts,
        text("forked_from"),
        text("fork_event_id"),
        {k: v for k, v in labels.items() if isinstance(v, str)},
    )


def placed(session: StoredSession, directory: str | None, git_root: str | None) -> bool:
    """Whether the session belongs to ``directory`` or ``git_root`` (None matches nothing)."""
    return (directory is not None and session.directory == directory) or (
        git_root is not None and session.git_root == git_root
    )


def fact_record(name: str, value: object, ts: dt.datetime, *, key: str | None = None) -> Record:
    """A fact line: ``value`` (any JSON value) under ``name`` and ``key``."""
    return Record(k=KIND_FACT, id=new_id(), ts=ts, type=name, key=key, data=msgspec.Raw(_json_encoder.encode(value)))


def to_session(
    session_id: str, place: Place, state: LogState, read_fact: Callable[[FactRef], msgspec.Raw | None]
) -> StoredSession:
    """The session a log's summary describes; ``read_fact`` reads a value not kept in the summary."""
    server = state.fact(FACT_SERVER_SESSION)
    archived = state.fact(FACT_ARCHIVED)
    server_raw = None
    if server is not None:
        server_raw = server.value if server.value is not None else read_fact(server)
    return StoredSession(
        id=session_id,
        directory=place.directory,
        git_root=place.git_root,
        server_session_id=loads_str(server_raw) if server_raw is not None else None,
        created_at=place.created_at,
        updated_at=state.head_ts or place.created_at,
        archived_at=archived.ts if archived is not None and _is_true(archived.value) else None,
        head_id=state.head_id,
        event_count=state.events,
        forked_from=place.forked_from,
        fork_event_id=place.fork_event_id,
        labels=place.labels,
    )


def _is_true(raw: msgspec.Raw | None) -> bool:
    return raw is not None and bytes(raw).strip() == b"true"


def check_json(value: Any) -> Any:
    """``value`` if it is a JSON value that comes back equal: None, bool, int, finite float, str, and lists
    (or tuples, which come back as lists) and dicts with str keys of those.

    :raises TypeError: for anything else (a datetime, a set, bytes...), naming it.
    :raises ValueError: for ``inf`` or ``nan``, which JSON cannot carry.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} cannot be stored: JSON has no inf or nan")
        return value
    if isinstance(value, list | tuple):
        for item in value:
            check_json(item)
        return value
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"a metadata object's keys must be str, not {type(key).__name__} ({key!r})")
            check_json(item)
        return value
    raise TypeError(f"{type(value).__name__} is not a JSON value; store str, numbers, bools, None, lists or dicts")


def check_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """``labels`` as stored: str keys and values only.

    :raises TypeError: for anything else.
    """
    checked: dict[str, str] = {}
    for key, value in (labels or {}).items():
        checked[require_str(key, "label name")] = require_str(value, f"label {key!r}")
    return checked


def loads_json(raw: msgspec.Raw) -> Any:
    """The JSON value a raw fact holds, or None if it cannot be read."""
    try:
        return _any_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None


def loads_str(raw: msgspec.Raw) -> str | None:
    """The string a raw JSON value holds, or None for anything else (a newer version's, or a hand edit)."""
    value = loads_json(raw)
    return value if isinstance(value, str) else None
