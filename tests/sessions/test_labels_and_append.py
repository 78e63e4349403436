"""Labels, JSON metadata, a session created whole (an import), and appending without the conversation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import msgspec
import pytest

from eventlog import new_id
from sessions import (
    LocalSessionService,
    SessionConflict,
    SessionExists,
    SessionManager,
    StoredEvent,
    Text,
    UserMessage,
)

T0 = dt.datetime(2025, 6, 1, 9, 30, tzinfo=dt.UTC)


def _open(root: Path) -> LocalSessionService:
    return LocalSessionService.open(root, durability="flush")


def test_labels_are_set_at_creation_and_listed_from_the_index(tmp_path: Path) -> None:
    store = _open(tmp_path)
    ids = {}
    for app, user in [("shop", "ann"), ("shop", "bob"), ("blog", "ann")]:
        manager = SessionManager.create_new(store, "/p", labels={"app": app, "user": user})
        manager.persist_events([UserMessage(f"{app}/{user}")])
        ids[app, user] = manager.session_id
    with manager.batch():  # a batched creation carries labels too
        batched = SessionManager.create_new(store, "/p", labels={"app": "shop", "user": "cy"})
        batched.persist_events([UserMessage("x")])
    ids["shop", "cy"] = batched.session_id
    store.close()

    fresh = _open(tmp_path)
    assert {s.id for s in fresh.list_sessions(labels={"app": "shop"})} == {
        ids["shop", "ann"],
        ids["shop", "bob"],
        ids["shop", "cy"],
    }
    assert [s.id for s in fresh.list_sessions(labels={"app": "shop", "user": "ann"})] == [ids["shop", "ann"]]
    assert fresh.list_sessions(labels={"app": "none"}) == []
    stored = fresh.get_session(ids["blog", "ann"])
    assert stored is not None and stored.labels == {"app": "blog", "user": "ann"}
    # The index answers: the logs are not read (their rows cover them), so a listing reads no log line.
    index = (tmp_path / "index.jsonl").read_bytes()
    assert b'"labels":{"app":"blog","user":"ann"}' in index
    with pytest.raises(TypeError):
        fresh.create_session(new_id(), None, None, labels={"n": 5})  # type: ignore[dict-item]


def test_metadata_takes_any_json_value_and_lists_its_keys(tmp_path: Path) -> None:
    store = _open(tmp_path)
    manager = SessionManager.create_new(store, "/p")
    manager.persist_events([UserMessage("x")])
    sid = manager.session_id
    values = {"s": "text", "n": 3, "f": 0.5, "b": False, "none": None, "list": [1, "a"], "obj": {"k": [True]}}
    for key, value in values.items():
        store.set_metadata(sid, key, value)
    store.set_metadata(sid, "n", 4)  # the newest wins
    fresh = _open(tmp_path)
    assert fresh.metadata(sid) == {**values, "n": 4}
    assert fresh.get_metadata(sid, "obj") == {"k": [True]}
    assert fresh.get_metadata(sid, "missing") is None
    for bad in (dt.datetime.now(dt.UTC), {1: "x"}, {"x"}, b"raw"):
        with pytest.raises(TypeError):
            store.set_metadata(sid, "bad", bad)
    with pytest.raises(ValueError, match="nan"):
        store.set_metadata(sid, "bad", [float("nan")])
    assert "bad" not in fresh.metadata(sid)


def _event(sid: str, eid: str, parent: str | None, text: str, minutes: int) -> StoredEvent:
    return StoredEvent(
        id=eid,
        session_id=sid,
        parent_id=parent,
        invocation_id="import",
        event_type="text",
        event_data=msgspec.json.encode({"content": text}).decode(),
        created_at=T0 + dt.timedelta(minutes=minutes),
    )


def test_a_session_is_created_whole_with_its_tree_times_and_head(tmp_path: Path) -> None:
    store = _open(tmp_path)
    sid = "imported-1"
    # a - b - c (deepest)       the source's active branch is a - d, which the chain rule would not pick
    #      \ d
    events = [
        _event(sid, "a", None, "a", 0),
        _event(sid, "b", "a", "b", 1),
        _event(sid, "c", "b", "c", 2),
        _event(sid, "d", "a", "d", 3),
    ]
    created = store.create_session(
        sid, "/src", None, events=events, metadata={"source": {"tool": "x"}}, created_at=T0, head_id="d"
    )
    assert created.created_at == T0 and created.head_id == "d" and created.event_count == 4
    fresh = _open(tmp_path)
    assert [e.id for e in fresh.load_events(sid)] == ["a", "d"]
    assert [e.created_at for e in fresh.load_events(sid)] == [T0, T0 + dt.timedelta(minutes=3)]
    assert sorted(fresh.load_tree(sid).heads) == ["c", "d"]
    assert fresh.get_metadata(sid, "source") == {"tool": "x"}
    stored = fresh.get_session(sid)
    assert stored is not None and stored.updated_at == T0 + dt.timedelta(minutes=3)
    assert fresh.find_resumable("/src", None, 3600) is None

    # The deepest leaf as head needs no head record.
    plain = store.create_session("imported-2", None, None, events=[_event("imported-2", "x", None, "x", 0)])
    assert plain.head_id == "x"
    with pytest.raises(SessionExists):
        store.create_session(sid, None, None)


@pytest.mark.parametrize(
    ("events", "head", "message"),
    [
        ([("a", None), ("b", "z")], None, "not an earlier event"),
        ([("b", "a"), ("a", None)], None, "not an earlier event"),
        ([("a", None)], "q", "head_id"),
    ],
)
def test_a_bad_tree_is_refused_and_nothing_written(
    tmp_path: Path, events: list[tuple[str, str | None]], head: str | None, message: str
) -> None:
    store = _open(tmp_path)
    with pytest.raises(ValueError, match=message):
        store.create_session("s", None, None, events=[_event("s", e, p, e, 0) for e, p in events], head_id=head)
    assert store.get_session("s") is None


def test_append_without_the_conversation(tmp_path: Path) -> None:
    store = _open(tmp_path)
    manager = SessionManager.create_new(store, "/p", session_id="chat-7")
    first = manager.append([UserMessage("one"), Text("two")])
    assert len(first) == 2 and manager.head_id == first[-1]

    stored = store.get_session("chat-7")
    assert stored is not None
    attached = SessionManager.attach(store, stored)
    assert attached.append([UserMessage("three")]) != []
    with pytest.raises(RuntimeError, match="append"):
        attached.persist_events([UserMessage("x")])
    # The first manager's head is stale now: its append is refused, with nothing written.
    with pytest.raises(SessionConflict):
        manager.append([UserMessage("lost?")])
    contents = [msgspec.json.decode(e.event_data)["content"] for e in store.load_events("chat-7")]
    assert contents == ["one", "two", "three"]
    assert attached.append([]) == []


def test_a_log_deleted_and_created_again_is_read_afresh_by_every_store(tmp_path: Path) -> None:
    """Another process deletes a session and creates one with the same id: its header, not ours, holds."""
    mine = _open(tmp_path)
    other = _open(tmp_path)
    mine.create_session("shared", "/first", None, labels={"owner": "mine"})
    assert mine.get_session("shared").labels == {"owner": "mine"}  # type: ignore[union-attr]
    other.delete_session("shared")
    other.create_session("shared", "/second", None, labels={"owner": "other"})
    seen = mine.get_session("shared")
    assert seen is not None and (seen.labels, seen.directory) == ({"owner": "other"}, "/second")
    mine.close()  # saves its rows: they must not bring the old header back
    fresh = _open(tmp_path).get_session("shared")
    assert fresh is not None and (fresh.labels, fresh.directory) == ({"owner": "other"}, "/second")


def test_archiving_twice_keeps_the_first_time_and_writes_nothing(tmp_path: Path) -> None:
    store = _open(tmp_path)
    store.create_session("a", None, None)
    store.archive("a")
    first = store.get_session("a")
    size = store.log_path("a").stat().st_size
    store.archive("a")
    again = store.get_session("a")
    assert first is not None and again is not None and again.archived_at == first.archived_at
    assert store.log_path("a").stat().st_size == size
