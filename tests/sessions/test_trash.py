"""Deleting into the trash, on the file store: whole logs move, nothing acknowledged is lost."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sessions import LocalSessionService, SessionExists, SessionManager, SessionNotFound, Text, UserMessage
from sessions.conflicts import conflict_copies


def test_deleting_a_session_being_appended_to_loses_no_acknowledged_event(tmp_path: Path) -> None:
    writer_store = LocalSessionService.open(tmp_path, durability="flush")
    manager = SessionManager.create_new(writer_store, "/p", None)
    manager.persist_events([UserMessage("0")])
    acked: list[int] = []
    stopped: list[BaseException] = []

    def write() -> None:
        conversation: list[UserMessage | Text] = [UserMessage("0")]
        try:
            for n in range(1, 10_000):
                conversation.append(Text(str(n)))
                manager.persist_events(conversation)
                acked.append(n)
        except SessionNotFound as exc:  # the clear error after the delete
            stopped.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    while len(acked) < 50:
        pass
    LocalSessionService.open(tmp_path).delete_session(manager.session_id)
    thread.join()
    assert stopped, "appends after the delete must fail, not go somewhere else"
    restorer = LocalSessionService.open(tmp_path)
    restorer.restore_session(manager.session_id)
    contents = [e.event_data for e in restorer.load_events(manager.session_id)]
    assert contents[: len(acked) + 1] == ['{"content":"0"}', *(f'{{"content":"{n}"}}' for n in acked)]


def test_conflict_copies_go_to_the_trash_with_their_log_and_come_back_merged(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/p", None)
    manager.persist_events([UserMessage("x")])
    copy = tmp_path / "sessions" / f"{manager.session_id}.sync-conflict-20260101-000000-ABCDEFG.jsonl"
    copy.write_bytes(service.log_path(manager.session_id).read_bytes())
    service.delete_session(manager.session_id)
    assert conflict_copies(tmp_path / "sessions") == {}
    assert sorted(p.name for p in (tmp_path / "trash" / "deleted").iterdir()) == sorted(
        [f"{manager.session_id}.jsonl", copy.name]
    )
    assert [t.id for t in service.list_trash()] == [manager.session_id]  # the copy is no session of its own


def test_restore_never_replaces_a_session_created_meanwhile(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/p", None)
    manager.persist_events([UserMessage("old")])
    service.delete_session(manager.session_id)
    service.create_session(manager.session_id, "/elsewhere", None)
    with pytest.raises(SessionExists):
        service.restore_session(manager.session_id)
    stored = service.get_session(manager.session_id)
    assert stored is not None and stored.directory == "/elsewhere"
    assert [t.id for t in service.list_trash()] == [manager.session_id]


def test_two_deleted_logs_of_one_id_are_both_kept_and_restore_takes_the_newest(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/p", None)
    manager.persist_events([UserMessage("first life")])
    service.delete_session(manager.session_id)
    again = SessionManager(service, manager.session_id, directory="/q", git_root=None, created=False)
    again.persist_events([UserMessage("second life"), Text("longer")])
    service.delete_session(manager.session_id)
    trashed = service.list_trash()
    assert [t.id for t in trashed] == [manager.session_id] * 2
    assert sorted(Path(t.path).name for t in trashed) == [
        f"{manager.session_id}.jsonl",
        f"{manager.session_id}.jsonl.1",
    ]
    service.restore_session(manager.session_id)
    restored = service.get_session(manager.session_id)
    assert restored is not None and (restored.directory, restored.event_count) == ("/q", 2)
    assert len(service.list_trash()) == 1


def test_restore_refuses_an_id_that_now_differs_only_in_case_from_another(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path)
    first = SessionManager.create_new(service, "/p", None, session_id="Chat-1")
    first.persist_events([UserMessage("x")])
    service.delete_session("Chat-1")
    second = SessionManager.create_new(service, "/p", None, session_id="chat-1")
    second.persist_events([UserMessage("y")])
    with pytest.raises(SessionExists, match="chat-1"):
        service.restore_session("Chat-1")
    assert [t.id for t in service.list_trash()] == ["Chat-1"]  # still there, whole
