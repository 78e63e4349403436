"""Rewinds on the file store: the abandoned events stay, every reader and every machine agree on the head."""

from __future__ import annotations

import shutil
from pathlib import Path

from eventlog import merge_logs
from sessions import LocalSessionService, SessionManager, Text, UserMessage
from sessions.conflicts import merge_conflict_copies


def test_rewind_keeps_the_abandoned_events_in_the_tree_and_a_new_process_agrees(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/p", None)
    conversation: list[UserMessage | Text] = [UserMessage("a"), Text("b"), UserMessage("c"), Text("d")]
    manager.persist_events(conversation)
    ids = [e.id for e in service.load_events(manager.session_id)]
    now = manager.rewind(ids[1])
    assert now == conversation[:2]
    manager.persist_events([*now, UserMessage("c2")])
    for store in (service, LocalSessionService.open(tmp_path)):
        assert [e.event_data for e in store.load_events(manager.session_id)] == [
            '{"content":"a"}',
            '{"content":"b"}',
            '{"content":"c2"}',
        ]
        tree = store.load_tree(manager.session_id)
        assert {e.id for e in tree.events} >= set(ids)  # nothing abandoned is gone
        assert tree.active_head == manager.head_id and len(tree.heads) == 2
        stored = store.get_session(manager.session_id)
        assert stored is not None and stored.head_id == manager.head_id
    assert manager.pop() == conversation[:2]
    assert [e.event_data for e in service.load_events(manager.session_id)] == ['{"content":"a"}', '{"content":"b"}']
    assert manager.pop() == conversation[:1]
    assert manager.pop() == [] and service.load_events(manager.session_id) == []
    manager.persist_events([UserMessage("again")])
    assert [e.event_data for e in service.load_events(manager.session_id)] == ['{"content":"again"}']


def test_a_rewind_on_one_machine_and_an_append_on_another_converge(tmp_path: Path) -> None:
    one = LocalSessionService.open(tmp_path / "one")
    manager = SessionManager.create_new(one, "/p", None)
    manager.persist_events([UserMessage("a"), Text("b"), UserMessage("c")])
    shutil.copytree(tmp_path / "one" / "sessions", tmp_path / "two" / "sessions")
    two = LocalSessionService.open(tmp_path / "two")
    stored = two.get_session(manager.session_id)
    assert stored is not None
    first = one.load_events(manager.session_id)[0].id
    manager.rewind(first)  # machine one rewinds to "a"
    elsewhere = SessionManager.resume(two, stored)  # machine two goes on from "c"
    elsewhere.manager.persist_events([*elsewhere.events, Text("d")])
    logs = [s.log_path(manager.session_id).read_bytes() for s in (one, two)]
    assert merge_logs(logs).data == merge_logs(reversed(logs)).data  # the same file on both machines
    copy = tmp_path / "one" / "sessions" / f"{manager.session_id}.sync-conflict-20260101-000000-ABCDEFG.jsonl"
    copy.write_bytes(logs[1])
    merge_conflict_copies(one, dry_run=False)
    merged = LocalSessionService.open(tmp_path / "one")
    # The rewind rules: machine two's append was on the abandoned branch, so the head is "a".
    assert [e.event_data for e in merged.load_events(manager.session_id)] == ['{"content":"a"}']
    assert len(merged.load_tree(manager.session_id).events) == 4
