"""The open event model: an application's own event types, the standard ones agents write, and meta."""

from __future__ import annotations

import datetime as dt
import keyword
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessions import (
    Attachment,
    Compaction,
    EventBase,
    LocalSessionService,
    Reasoning,
    SessionManager,
    Text,
    ToolResult,
    UnknownEvent,
    UserMessage,
)
from sessions.events import EVENT_TYPES, EventTypes, serialize_event, standard_events


class Plan(EventBase, frozen=True, kw_only=True):
    """An application's own event: a plan the agent made."""

    TYPE: ClassVar[str] = "acme.plan"
    steps: list[str]
    done: int = 0


class Vote(EventBase, frozen=True):
    TYPE: ClassVar[str] = "acme.vote"
    up: bool

    def standard(self) -> tuple[EventBase, ...]:
        return (Text("+1" if self.up else "-1"),)


def _open(root: Path, *types: type[EventBase]) -> LocalSessionService:
    return LocalSessionService.open(root, durability="flush", event_types=types)


def test_application_types_are_typed_on_resume_and_by_the_store(tmp_path: Path) -> None:
    store = _open(tmp_path, Plan, Vote)
    manager = SessionManager.create_new(store, "/p")
    conversation: list[EventBase] = [UserMessage("plan it"), Plan(steps=["a", "b"]), Vote(True)]
    manager.persist_events(conversation)

    fresh = _open(tmp_path, Plan, Vote)
    stored = fresh.get_session(manager.session_id)
    assert stored is not None
    resumed = SessionManager.resume(fresh, stored)
    assert resumed.events == conversation
    resumed.manager.persist_events([*resumed.events, Vote(False)])
    raw = fresh.load_events(manager.session_id)[1]
    assert fresh.deserialize_event(raw.event_type, raw.event_data) == Plan(steps=["a", "b"])
    assert resumed.manager.deserialize_event(raw.event_type, raw.event_data) == Plan(steps=["a", "b"])
    assert SessionManager.create_new(_open(tmp_path), "/p").deserialize_event("acme.plan", "{}") == UnknownEvent(
        "acme.plan", "{}"
    )
    assert SessionManager.resume(fresh, stored, last=2).events == [Vote(True), Vote(False)]
    report = fresh.verify(manager.session_id)
    assert report.ok and not report.findings and report.unknown_types == {}


def test_a_store_without_the_types_keeps_them_byte_for_byte(tmp_path: Path) -> None:
    store = _open(tmp_path, Plan)
    manager = SessionManager.create_new(store, "/p")
    manager.persist_events([Plan(steps=["x"]), Plan(steps=["y"], done=1), UserMessage("ok")])
    before = store.log_path(manager.session_id).read_bytes()

    plain = _open(tmp_path)
    stored = plain.get_session(manager.session_id)
    assert stored is not None
    resumed = SessionManager.resume(plain, stored)
    assert resumed.events[:2] == [
        UnknownEvent("acme.plan", '{"steps":["x"]}'),
        UnknownEvent("acme.plan", '{"steps":["y"],"done":1}'),
    ]
    resumed.manager.persist_events([*resumed.events, Text("still here")])
    assert plain.log_path(manager.session_id).read_bytes().startswith(before)
    report = plain.verify(manager.session_id)
    # Not damage: one count per type, no finding per event.
    assert report.ok and report.findings == [] and report.unknown_types == {"acme.plan": 2}


def test_colliding_tags_are_refused_at_open(tmp_path: Path) -> None:
    class Other(EventBase, frozen=True):
        TYPE: ClassVar[str] = "acme.plan"

    class Shadow(EventBase, frozen=True):
        TYPE: ClassVar[str] = "text"

    class Untagged(EventBase, frozen=True):
        pass

    with pytest.raises(ValueError, match=r"acme\.plan"):
        _open(tmp_path, Plan, Other)
    with pytest.raises(ValueError, match="'text'"):
        _open(tmp_path, Shadow)
    with pytest.raises(ValueError, match="TYPE"):
        _open(tmp_path, Untagged)

    class Archived(EventBase, frozen=True):
        TYPE: ClassVar[str] = "archived"  # a session fact's name: a fast reader tells lines apart by type

    with pytest.raises(ValueError, match="fact"):
        _open(tmp_path, Archived)
    with pytest.raises(TypeError):
        EventTypes([dict])  # type: ignore[list-item]
    assert _open(tmp_path, Plan, Plan).event_types.application == (Plan,)  # the same class twice is harmless


def test_an_unregistered_type_is_refused_on_persist(tmp_path: Path) -> None:
    store = _open(tmp_path)
    manager = SessionManager.create_new(store, "/p")
    with pytest.raises(ValueError, match="not registered"):
        manager.persist_events([UserMessage("x"), Plan(steps=[])])
    assert store.list_sessions() == []  # nothing written, not even the session


def test_an_application_events_data_is_checked_on_append(tmp_path: Path) -> None:
    store = _open(tmp_path, Plan)
    manager = SessionManager.create_new(store, "/p")
    manager.persist_events([UserMessage("x")])
    with pytest.raises(ValueError, match=r"acme\.plan"):
        store.append_event(manager.session_id, "e1", manager.head_id, "i", "acme.plan", '{"steps": 5}')
    assert len(store.load_events(manager.session_id)) == 1


def test_reasoning_attachment_and_meta_round_trip(tmp_path: Path) -> None:
    store = _open(tmp_path)
    usage = {"input_tokens": 1200, "output_tokens": 85, "cache_read": 1000}
    conversation: list[EventBase] = [
        UserMessage("what is in the picture?"),
        Attachment(name="shot.png", media_type="image/png", data=b"\x89PNG\r\n\x1a\n\x00\xff"),
        Attachment(name="big.pdf", media_type="application/pdf", uri="file:///tmp/big.pdf"),
        Reasoning("Looks like a cat.", signature="sig=="),
        Reasoning(encrypted="gAAAAB...", summary=["Identified the animal"]),
        Text("A cat.", meta={"model": "m-1", "usage": usage, "stop_reason": "end_turn", "cost": 0.0042}),
    ]
    manager = SessionManager.create_new(store, "/p")
    manager.persist_events(conversation)
    stored = store.get_session(manager.session_id)
    assert stored is not None
    assert SessionManager.resume(_open(tmp_path), stored).events == conversation
    lines = [msgspec.json.decode(line) for line in store.log_path(manager.session_id).read_bytes().splitlines()]
    data = [line["data"] for line in lines if line["k"] == "event"]
    assert data[1] == {"name": "shot.png", "media_type": "image/png", "data": "iVBORw0KGgoA/w=="}  # base64
    assert data[4] == {"encrypted": "gAAAAB...", "summary": ["Identified the animal"]}
    assert data[5]["meta"]["usage"] == usage
    assert "meta" not in data[0]  # unset fields are not written


def test_old_events_without_the_new_fields_load(tmp_path: Path) -> None:
    assert EventTypes().deserialize("tool_result", '{"tool_use_id":"t","content":"ok","is_error":false}') == (
        ToolResult("t", "ok", False)
    )
    assert EventTypes().deserialize("text", '{"content":"hi","meta":{"model":"m"}}') == Text("hi", meta={"model": "m"})


def test_meta_refuses_what_json_cannot_carry() -> None:
    with pytest.raises(ValueError, match="nan"):
        serialize_event(Text("x", meta={"cost": float("nan")}))


def test_standard_views() -> None:
    events = [Vote(True), UserMessage("u"), Compaction(summary="s")]
    assert standard_events(events) == [Text("+1"), UserMessage("u"), Compaction(summary="s")]


def test_persist_with_source_times_keeps_order_by_position(tmp_path: Path) -> None:
    store = _open(tmp_path)
    manager = SessionManager.create_new(store, "/p")
    old = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
    events = [UserMessage("first"), Text("second"), UserMessage("third")]
    # Times out of order on purpose: the log's order is the list's, never the clock's.
    times = [old, old - dt.timedelta(hours=1), old + dt.timedelta(minutes=5)]
    manager.persist_events(events, times=times)
    loaded = store.load_events(manager.session_id)
    assert [e.created_at for e in loaded] == times
    assert [msgspec.json.decode(e.event_data)["content"] for e in loaded] == ["first", "second", "third"]
    stored = store.get_session(manager.session_id)
    assert stored is not None and stored.updated_at == times[-1]
    assert store.find_resumable("/p", None, max_age_secs=3600) is None  # an old conversation is not "recent"
    with pytest.raises(ValueError, match="timezone"):
        manager.persist_events([*events, Text("x")], times=[*times, dt.datetime(2024, 1, 1)])
    with pytest.raises(ValueError, match="entries"):
        manager.persist_events([*events, Text("x")], times=times)


# -- property tests ------------------------------------------------------------------

_FIELD_TYPES: dict[str, tuple[Any, st.SearchStrategy[Any]]] = {
    "int": (int, st.integers(-(2**63), 2**63 - 1)),
    "str": (str, st.text()),
    "bool": (bool, st.booleans()),
    "float": (float, st.floats(allow_nan=False, allow_infinity=False)),
    "list": (list[str], st.lists(st.text(max_size=5), max_size=4)),
    "opt": (int | None, st.none() | st.integers(-5, 5)),
    "dict": (dict[str, int], st.dictionaries(st.text(max_size=4), st.integers(-9, 9), max_size=3)),
}
_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda n: not keyword.iskeyword(n) and n not in {"meta", "standard", "type"}
)


@st.composite
def _event_type(draw: st.DrawFn) -> tuple[type[EventBase], list[Any]]:
    """A user-defined Struct with random fields, and a few instances of it."""
    names = draw(st.lists(_names, min_size=1, max_size=5, unique=True))
    kinds = [draw(st.sampled_from(sorted(_FIELD_TYPES))) for _ in names]
    tag = draw(st.from_regex(r"[a-z]{1,6}\.[a-z_]{1,8}", fullmatch=True).filter(lambda t: t not in EVENT_TYPES))
    fields = [(name, _FIELD_TYPES[kind][0]) for name, kind in zip(names, kinds, strict=True)]
    cls = msgspec.defstruct(
        "Generated", fields, bases=(EventBase,), frozen=True, namespace={"TYPE": tag, "__annotations__": {}}
    )
    values = st.fixed_dictionaries({n: _FIELD_TYPES[k][1] for n, k in zip(names, kinds, strict=True)})
    instances = [cls(**draw(values)) for _ in range(draw(st.integers(1, 4)))]
    assert issubclass(cls, EventBase)
    return cls, instances


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(generated=_event_type())
def test_random_application_types_round_trip_and_survive_unregistered(
    tmp_path_factory: pytest.TempPathFactory, generated: tuple[type[EventBase], list[Any]]
) -> None:
    cls, instances = generated
    root = tmp_path_factory.mktemp("store")
    store = LocalSessionService.open(root, durability="flush", event_types=[cls])
    manager = SessionManager.create_new(store, "/p")
    manager.persist_events([UserMessage("start"), *instances])
    stored = store.get_session(manager.session_id)
    assert stored is not None
    fresh = LocalSessionService.open(root, durability="flush", event_types=[cls])
    assert SessionManager.resume(fresh, stored).events == [UserMessage("start"), *instances]

    # A store that was not given the type keeps each event byte for byte, and writes after them.
    before = store.log_path(manager.session_id).read_bytes()
    plain = LocalSessionService.open(root, durability="flush")
    resumed = SessionManager.resume(plain, stored)
    assert all(isinstance(e, UnknownEvent) and e.type == cls.TYPE for e in resumed.events[1:])
    resumed.manager.persist_events([*resumed.events, Text("after")])
    after = plain.log_path(manager.session_id).read_bytes()
    assert after.startswith(before)
    assert plain.verify(manager.session_id).unknown_types == {cls.TYPE: len(instances)}
