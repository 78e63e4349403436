"""The index (``index.jsonl``) and the costs it bounds: reads that do not grow with history, one sync per turn."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import pytest

import eventlog._fs as fs
import sessions
import sessions._logs
import sessions.index
import sessions.store
from eventlog import utcnow
from sessions import LocalSessionService, SessionManager, Text, UserMessage
from sessions._index_file import INDEX_FORMAT
from sessions.index import OLD_FILES

BIG = 2_000_000
"""Bytes of log a test builds: many times what a bounded read may touch."""
BOUND = sessions._logs.SAVE_LAG + (1 << 16)


def _long_session(root: Path, directory: str = "/long") -> str:
    service = LocalSessionService.open(root, durability="flush")
    manager = SessionManager.create_new(service, directory, None)
    events: list[UserMessage | Text] = []
    while not events or os.path.getsize(service.log_path(manager.session_id)) < BIG:
        events += [UserMessage("q" * 200), Text("a" * 200)] * 100
        manager.persist_events(events)
    manager.set_metadata("k", "v" * 2000)
    service.close()
    return manager.session_id


@contextmanager
def bytes_read(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Count every byte read from session logs (all the log layer's reads go through ``_fs.pread``)."""
    counted = [0]
    real = fs.pread

    def counting(fd: int, n: int, offset: int) -> bytes:
        data = real(fd, n, offset)
        if "/sessions/" in os.readlink(f"/proc/self/fd/{fd}"):  # not the index
            counted[0] += len(data)
        return data

    monkeypatch.setattr(fs, "pread", counting)
    yield counted
    monkeypatch.setattr(fs, "pread", real)


@pytest.mark.parametrize("call", ["get_session", "get_metadata", "set_metadata", "archive", "server_id", "append"])
def test_a_new_process_reads_a_bounded_part_of_a_long_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    session_id = _long_session(tmp_path)
    service = LocalSessionService.open(tmp_path)
    with bytes_read(monkeypatch) as counted:
        if call == "get_session":
            assert service.get_session(session_id) is not None
        elif call == "get_metadata":
            assert service.get_metadata(session_id, "k") == "v" * 2000
        elif call == "set_metadata":
            service.set_metadata(session_id, "k", "w")
        elif call == "archive":
            service.archive(session_id)
        elif call == "server_id":
            service.update_server_session_id(session_id, "srv")
        else:
            stored = service.get_session(session_id)
            assert stored is not None
            service.append_event(session_id, "e-new", stored.head_id, "inv", "text", '{"content":"x"}')
    assert counted[0] < BOUND, f"{call} read {counted[0]} bytes of a {BIG}-byte log"


def test_without_an_index_each_call_reads_the_log_once_at_most(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session_id = _long_session(tmp_path)
    (tmp_path / "index.jsonl").unlink()
    service = LocalSessionService.open(tmp_path)
    size = os.path.getsize(service.log_path(session_id))
    with bytes_read(monkeypatch) as counted:
        assert service.get_session(session_id) is not None
        service.set_metadata(session_id, "k", "w")
        assert service.get_metadata(session_id, "k") == "w"
    assert counted[0] < size + BOUND


def test_after_a_resume_the_first_append_reads_nothing_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session_id = _long_session(tmp_path)
    (tmp_path / "index.jsonl").unlink()  # the resume is the only read of the log
    service = LocalSessionService.open(tmp_path)
    stored = service.get_session(session_id)
    assert stored is not None
    resumed = SessionManager.resume(service, stored)
    with bytes_read(monkeypatch) as counted:
        resumed.manager.persist_events([*resumed.events, UserMessage("next")])
    # Only the last bytes the summary covers are looked at again (the racy-stamp check).
    assert counted[0] <= 32


def _count_syncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = fs.fsync

    def counting(fd: int) -> None:
        calls[0] += 1
        real(fd)

    monkeypatch.setattr(fs, "fsync", counting)
    return calls


def test_a_batched_turn_is_one_write_and_one_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/p", None)
    conversation: list[UserMessage | Text] = [UserMessage("hi"), Text("hello")]
    syncs = _count_syncs(monkeypatch)
    with manager.batch():
        manager.persist_events(conversation)
        manager.persist_server_session_id("srv-1")
        manager.set_metadata("a", "1")
        manager.set_metadata("b", "2")
    assert syncs[0] == 2  # the new log and its folder entry: the create rides in the same write
    syncs[0] = 0
    conversation += [UserMessage(f"m{n}") for n in range(10)]
    with manager.batch():
        manager.persist_events(conversation)
        manager.persist_server_session_id("srv-2")
        manager.set_metadata("a", "3")
        manager.set_metadata("b", "4")
    assert syncs[0] == 1
    stored = service.get_session(manager.session_id)
    assert stored is not None and stored.server_session_id == "srv-2" and stored.event_count == 12
    assert (service.get_metadata(stored.id, "a"), service.get_metadata(stored.id, "b")) == ("3", "4")
    assert [type(e) for e in SessionManager.resume(service, stored).events] == [type(e) for e in conversation]


def test_a_batch_that_raises_writes_nothing(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/p", None)
    with pytest.raises(RuntimeError), manager.batch():
        manager.persist_events([UserMessage("lost")])
        manager.set_metadata("a", "1")
        raise RuntimeError("the turn failed")
    assert service.list_sessions() == []
    manager.persist_events([UserMessage("kept")])
    assert manager.persisted_count == 1 and service.get_metadata(manager.session_id, "a") is None


def test_a_clock_stepped_back_does_not_hide_a_later_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/p", None)
    manager.persist_events([UserMessage("x")])
    manager.set_metadata("k", "old")
    service.archive(manager.session_id)
    back = utcnow() - dt.timedelta(minutes=10)
    monkeypatch.setattr(sessions.store, "utcnow", lambda: back)
    service.set_metadata(manager.session_id, "k", "new")
    service.unarchive(manager.session_id)
    for store in (service, LocalSessionService.open(tmp_path)):
        assert store.get_metadata(manager.session_id, "k") == "new"
        assert [s.id for s in store.list_sessions()] == [manager.session_id]


def test_cold_find_and_list_answer_from_the_index_and_see_later_appends(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path)
    managers = [SessionManager.create_new(service, f"/p{n}", None) for n in range(3)]
    for manager in managers:
        manager.persist_events([UserMessage("x")])
    service.close()
    # Another process appends without saving a row: the stamp no longer matches, the log answers.
    other = LocalSessionService.open(tmp_path)
    stored = other.get_session(managers[1].session_id)
    assert stored is not None
    resumed = SessionManager.resume(other, stored)
    resumed.manager.persist_events([*resumed.events, Text("more")])
    fresh = LocalSessionService.open(tmp_path)
    found = fresh.find_resumable("/p1", None, 3600)
    assert found is not None and found.event_count == 2 and found.head_id == resumed.manager.head_id
    assert {s.id: s.event_count for s in fresh.list_sessions()}[managers[1].session_id] == 2


def test_a_session_without_a_row_is_found_and_a_deleted_one_is_not_listed(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path)
    kept = SessionManager.create_new(service, "/p", None)
    kept.persist_events([UserMessage("x")])
    gone = SessionManager.create_new(service, "/p", None)
    gone.persist_events([UserMessage("y")])
    service.close()
    (tmp_path / "index.jsonl").write_bytes(b"")  # as if another machine's sync tool brought the logs
    service.log_path(gone.session_id).unlink()
    fresh = LocalSessionService.open(tmp_path)
    assert [s.id for s in fresh.list_sessions()] == [kept.session_id]
    found = fresh.find_resumable("/p", None, 3600)
    assert found is not None and found.id == kept.session_id


def test_a_damaged_row_costs_only_its_own_session(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path)
    ids = []
    for n in range(3):
        manager = SessionManager.create_new(service, "/p", None)
        manager.persist_events([UserMessage(str(n))] * (n + 1))
        ids.append(manager.session_id)
    service.close()
    index = tmp_path / "index.jsonl"
    lines = index.read_bytes().splitlines()
    damaged = [line if ids[1].encode() not in line else line[: len(line) // 2] for line in lines]
    index.write_bytes(b"\n".join(damaged) + b"\n")
    fresh = LocalSessionService.open(tmp_path)
    assert {s.id: s.event_count for s in fresh.list_sessions()} == {ids[0]: 1, ids[1]: 2, ids[2]: 3}


def test_an_index_of_an_older_release_is_deleted_not_read(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/p", None)
    manager.persist_events([UserMessage("x")])
    service.close()
    for name in OLD_FILES:
        (tmp_path / name).write_bytes(b'{"format": 1, "sessions": {}}')
    fresh = LocalSessionService.open(tmp_path)
    assert [s.id for s in fresh.list_sessions()] == [manager.session_id]
    assert not any((tmp_path / name).exists() for name in OLD_FILES)


def test_superseded_rows_are_compacted_away(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions.index, "_TAIL_MIN", 4000)
    service = LocalSessionService.open(tmp_path, durability="flush")
    managers = [SessionManager.create_new(service, f"/p{n}", None) for n in range(3)]
    for manager in managers:
        manager.persist_events([UserMessage("x")])
    index = tmp_path / "index.jsonl"
    for n in range(60):  # each reopen saves the rows of the sessions written again
        service.close()
        service = LocalSessionService.open(tmp_path, durability="flush")
        for manager in managers:
            service.set_metadata(manager.session_id, "n", str(n))
    service.close()
    lines = index.read_bytes().splitlines()
    assert msgspec.json.decode(lines[0])["index"] == INDEX_FORMAT  # compacted: a header, then rows sorted by id
    assert len(lines) < 60
    fresh = LocalSessionService.open(tmp_path)
    assert [fresh.get_metadata(m.session_id, "n") for m in managers] == ["59"] * 3
    assert sorted(s.id for s in fresh.list_sessions()) == sorted(m.session_id for m in managers)
    # Each row is found by binary search in the sorted part, whatever the tail holds.
    for manager in managers:
        row = sessions.index.SessionIndex(index, tmp_path / "locks" / "x.lock").row(manager.session_id)
        assert row is not None and row.session.id == manager.session_id


def test_a_log_replaced_by_rename_while_held_open_gets_the_next_append(tmp_path: Path) -> None:
    """A sync tool or git replaces a log (temporary file, rename) while a service holds its descriptor."""
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/p", None)
    conversation: list[UserMessage | Text] = [UserMessage("one")]
    manager.persist_events(conversation)  # the service now holds the log open
    path = service.log_path(manager.session_id)
    replacement = path.with_name(".replacement.tmp")
    replacement.write_bytes(path.read_bytes())
    os.replace(replacement, path)
    conversation.append(Text("two"))
    manager.persist_events(conversation)
    fresh = LocalSessionService.open(tmp_path)
    assert [e.event_type for e in fresh.load_events(manager.session_id)] == ["user_message", "text"]
    # A replacement that does not continue the head the manager knows is a conflict, not a silent fork.
    replacement.write_bytes(path.read_bytes().splitlines(keepends=True)[0])
    os.replace(replacement, path)
    conversation.append(UserMessage("three"))
    with pytest.raises(sessions.SessionConflict):
        manager.persist_events(conversation)
    assert path.read_bytes().count(b"\n") == 1
