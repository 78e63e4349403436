"""The reference implementation's tests, ported, each made to check what it claims."""

from __future__ import annotations

import itertools
from pathlib import Path

from eventlog import new_id, read_log
from sessions import (
    LocalSessionService,
    SessionManager,
    Text,
    ToolCall,
    UserMessage,
    serialize_event,
)


def _chain(service: LocalSessionService, session_id: str) -> list[tuple[str, str | None]]:
    return [(e.id, e.parent_id) for e in service.load_events(session_id)]


def test_create_new_and_persist(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/tmp", None)
    events = [UserMessage("hello"), Text("hi there")]
    manager.persist_events(events)
    size = service.log_path(manager.session_id).stat().st_size
    manager.persist_events(events)  # no new events: a no-op
    assert service.log_path(manager.session_id).stat().st_size == size
    assert [e.event_type for e in service.load_events(manager.session_id)] == ["user_message", "text"]


def test_create_and_resume(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path)
    session_id = new_id()
    service.create_session(session_id, "/project", "/project")
    events = [
        UserMessage("how do I list files?"),
        Text("Use ls"),
        ToolCall("tc_1", "suggest_command", {"command": "ls -la"}),
    ]
    parent = None
    for event in events:
        event_id = new_id()
        event_type, event_data = serialize_event(event)
        service.append_event(session_id, event_id, parent, "inv-1", event_type, event_data)
        parent = event_id
    service.update_server_session_id(session_id, "srv-abc")

    fresh = LocalSessionService.open(tmp_path)
    stored = fresh.find_resumable("/project", "/project", 3600)
    assert stored is not None and stored.id == session_id
    manager, loaded, server_sid, last_at, invocation_id = SessionManager.resume(fresh, stored)
    assert loaded == events
    assert server_sid == "srv-abc"
    assert manager.invocation_id != "inv-1" and invocation_id == manager.invocation_id
    assert last_at is not None and last_at == fresh.load_events(session_id)[-1].created_at
    size = fresh.log_path(session_id).stat().st_size
    manager.persist_events(loaded)
    assert fresh.log_path(session_id).stat().st_size == size


def test_incremental_persist(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/tmp", None)
    events: list[UserMessage | Text] = [UserMessage("first")]
    manager.persist_events(events)
    events += [Text("response"), UserMessage("second")]
    manager.persist_events(events)
    loaded = LocalSessionService.open(tmp_path).load_events(manager.session_id)
    assert [e.event_data for e in loaded] == [serialize_event(e)[1] for e in events]
    # The second batch is written once, not re-written from the start.
    assert len({e.invocation_id for e in loaded}) == 1
    assert len(loaded) == 3


def test_archive_of_unwritten_session_writes_nothing(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/tmp", None)
    manager.archive()
    assert not service.log_path(manager.session_id).exists()
    assert service.list_sessions(include_archived=True) == []


def test_persist_server_session_id(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/tmp", None)
    manager.persist_server_session_id("srv-123")
    stored = LocalSessionService.open(tmp_path).get_session(manager.session_id)
    assert stored is not None and stored.server_session_id == "srv-123"


def test_parent_chain_integrity(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/tmp", None)
    manager.persist_events([UserMessage("a"), Text("b"), UserMessage("c")])
    manager.persist_events([UserMessage("a"), Text("b"), UserMessage("c"), Text("d")])
    reopened = LocalSessionService.open(tmp_path)
    chain = _chain(reopened, manager.session_id)
    assert len(chain) == 4
    assert chain[0][1] is None
    for (previous_id, _), (_, parent_id) in itertools.pairwise(chain):
        assert parent_id == previous_id
    assert len({event_id for event_id, _ in chain}) == 4
    assert manager.head_id == chain[-1][0]
    # The file itself holds the same chain, in file order.
    records = [r for r in read_log(reopened.log_path(manager.session_id)).records if r.k == "event"]
    assert [(r.id, r.parent) for r in records] == chain
