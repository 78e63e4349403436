"""Behaviour of the file store that the protocol alone does not state."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

import eventlog
from eventlog import _fs, new_id, read_log
from sessions import (
    DamagedLogWarning,
    LocalSessionService,
    SessionHistoryMismatch,
    SessionManager,
    SessionNotFound,
    SessionsError,
    Text,
    ToolCall,
    ToolResult,
    UnknownEvent,
    UnsafeStorePath,
    UserMessage,
    _logs,
    catalog,
    store,
)


@pytest.fixture
def service(tmp_path: Path) -> LocalSessionService:
    return LocalSessionService.open(tmp_path / "store")


def _persisted(service: LocalSessionService, directory: str = "/proj", events: int = 3) -> SessionManager:
    manager = SessionManager.create_new(service, directory, "/git")
    manager.persist_events([UserMessage(f"m{n}") for n in range(events)])
    return manager


class CallCounter:
    """Wraps the file-system calls of ``eventlog._fs`` and counts them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: dict[str, int] = {}
        for name in ("open", "write", "fsync", "replace", "ftruncate"):
            monkeypatch.setattr(_fs, name, self._counting(name, getattr(_fs, name)))

    def _counting(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return real(*args, **kwargs)

        return call

    def reset(self) -> None:
        self.calls.clear()


# -- deferred creation and the manager --------------------------------------------------


def test_nothing_is_written_until_there_is_something_to_keep(service: LocalSessionService) -> None:
    manager = SessionManager.create_new(service, "/proj", "/proj")
    assert manager.get_metadata("k") is None
    manager.persist_events([])
    manager.archive()
    assert not service.log_path(manager.session_id).exists()
    assert service.find_resumable("/proj", "/proj", 3600) is None


@pytest.mark.parametrize(
    "first_write",
    [
        lambda m: m.persist_events([UserMessage("hi")]),
        lambda m: m.persist_server_session_id("srv"),
        lambda m: m.set_metadata("k", "v"),
    ],
    ids=["event", "server_id", "metadata"],
)
def test_first_write_creates_the_session(
    service: LocalSessionService, first_write: Callable[[SessionManager], None]
) -> None:
    manager = SessionManager.create_new(service, "/proj", "/git")
    first_write(manager)
    stored = service.get_session(manager.session_id)
    assert stored is not None and (stored.directory, stored.git_root) == ("/proj", "/git")


def test_persist_writes_one_batch_with_one_write_and_one_fsync(
    service: LocalSessionService, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = _persisted(service, events=1)
    counter = CallCounter(monkeypatch)
    events: list[Any] = [UserMessage("m0")] + [Text(f"t{n}") for n in range(10)]
    manager.persist_events(events)
    assert counter.calls.get("write") == 1
    assert counter.calls.get("fsync") == 1
    assert "open" not in counter.calls  # the log and its lock stay open between appends; no index write
    counter.reset()
    manager.persist_events(events)  # same list: a no-op
    assert counter.calls == {}


def test_flush_durability_never_fsyncs_appends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service = LocalSessionService.open(tmp_path, durability="flush")
    manager = _persisted(service, events=1)
    counter = CallCounter(monkeypatch)
    manager.persist_events([UserMessage("m0"), Text("a"), Text("b")])
    assert counter.calls.get("write") == 1
    assert "fsync" not in counter.calls
    reopened = LocalSessionService.open(tmp_path)
    assert len(reopened.load_events(manager.session_id)) == 3


def test_creating_a_log_syncs_file_and_directory(service: LocalSessionService, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = CallCounter(monkeypatch)
    synced_dirs: list[Path] = []
    real_sync_dir = eventlog.durability.sync_dir

    def spy(path: Path) -> None:
        synced_dirs.append(path)
        real_sync_dir(path)

    monkeypatch.setattr(eventlog.logfile, "sync_dir", spy)
    service.create_session(new_id(), None, None)
    assert synced_dirs == [service.sessions_dir]
    assert counter.calls.get("fsync") == 2  # the file, then the directory


def test_batch_events_get_ids_parents_invocation_and_time(service: LocalSessionService) -> None:
    manager = _persisted(service, events=2)
    before = eventlog.utcnow()
    manager.persist_events([UserMessage("m0"), UserMessage("m1"), Text("a"), ToolCall("c1", "ls", {"path": "."})])
    events = service.load_events(manager.session_id)
    new = events[2:]
    assert [e.parent_id for e in new] == [events[1].id, new[0].id]
    assert {e.invocation_id for e in events} == {manager.invocation_id}
    assert all(e.created_at >= before for e in new)
    stored = service.get_session(manager.session_id)
    assert stored is not None and stored.created_at <= events[0].created_at
    assert len({e.id for e in events}) == 4
    assert all(len(e.id) == 36 and e.id[14] == "7" for e in events)  # UUIDv7


@pytest.mark.parametrize(
    "bad_list",
    [
        [UserMessage("m0")],  # shorter than what was persisted
        [UserMessage("m0"), UserMessage("DIFFERENT"), Text("new")],  # the last persisted position differs
        [Text("a fresh list after resume"), Text("x"), Text("y"), Text("z")],
    ],
    ids=["shorter", "different-last", "fresh-list"],
)
def test_a_list_that_does_not_extend_the_history_writes_nothing(
    service: LocalSessionService, bad_list: list[Any]
) -> None:
    manager = SessionManager.create_new(service, "/p", None)
    manager.persist_events([UserMessage("m0"), UserMessage("m1")])
    size = service.log_path(manager.session_id).stat().st_size
    with pytest.raises(SessionHistoryMismatch) as excinfo:
        manager.persist_events(bad_list)
    assert isinstance(excinfo.value, SessionsError)
    assert manager.session_id in str(excinfo.value)
    assert service.log_path(manager.session_id).stat().st_size == size


def test_resumed_list_with_new_events_appends_only_the_new(service: LocalSessionService) -> None:
    manager = _persisted(service, events=3)
    stored = service.get_session(manager.session_id)
    assert stored is not None
    resumed = SessionManager.resume(LocalSessionService.open(service.root), stored)
    resumed.manager.persist_events([*resumed.events, Text("after resume")])
    events = service.load_events(manager.session_id)
    assert len(events) == 4
    assert events[3].parent_id == events[2].id
    assert events[3].invocation_id == resumed.invocation_id != manager.invocation_id


def test_archive_and_reset(service: LocalSessionService) -> None:
    manager = _persisted(service)
    old_id, old_invocation = manager.session_id, manager.invocation_id
    manager.archive_and_reset()
    assert manager.session_id != old_id and manager.invocation_id != old_invocation
    assert manager.head_id is None
    old = service.get_session(old_id)
    assert old is not None and old.archived_at is not None
    assert not service.log_path(manager.session_id).exists()  # the fresh session is deferred
    assert service.find_resumable("/proj", None, 3600) is None
    manager.persist_events([UserMessage("new start")])
    found = service.find_resumable("/proj", None, 3600)
    assert found is not None and found.id == manager.session_id
    assert [e.parent_id for e in service.load_events(manager.session_id)] == [None]


def test_unencodable_event_writes_nothing(service: LocalSessionService) -> None:
    manager = SessionManager.create_new(service, "/p", None)
    with pytest.raises((TypeError, msgspec.EncodeError)):
        manager.persist_events([ToolCall("c", "n", {"value": object()})])
    assert not service.log_path(manager.session_id).exists()
    manager.persist_events([UserMessage("ok")])
    with pytest.raises((TypeError, UnicodeEncodeError, msgspec.EncodeError, ValueError)):
        manager.persist_events([UserMessage("ok"), ToolCall("c", "n", {1j: 1})])
    assert len(service.load_events(manager.session_id)) == 1
    with pytest.raises(ValueError, match="inf"):
        manager.persist_events([UserMessage("ok"), ToolCall("c", "n", {"x": [1.0, float("inf")]})])
    assert len(service.load_events(manager.session_id)) == 1


def test_invalid_event_data_is_refused_before_writing(service: LocalSessionService) -> None:
    sid = new_id()
    service.create_session(sid, None, None)
    size = service.log_path(sid).stat().st_size
    with pytest.raises(ValueError, match="not valid JSON"):
        service.append_event(sid, new_id(), None, "inv", "text", "{not json")
    assert service.log_path(sid).stat().st_size == size


def test_pretty_printed_event_data_stays_one_line(service: LocalSessionService) -> None:
    sid = new_id()
    service.create_session(sid, None, None)
    service.append_event(sid, new_id(), None, "inv", "text", '{\n  "content": "a\\nb"\n}')
    [event] = service.load_events(sid)
    assert msgspec.json.decode(event.event_data) == {"content": "a\nb"}
    assert len(service.log_path(sid).read_bytes().splitlines()) == 2


# -- content that this version cannot read -----------------------------------------------


def test_unknown_event_type_loads_and_stays_byte_for_byte(service: LocalSessionService) -> None:
    manager = _persisted(service, events=1)
    sid = manager.session_id
    data = '{"shape":"from a newer version","nested":{"x":[1,2.5,null]}}'
    service.append_event(sid, new_id(), manager.head_id, "inv-future", "hologram", data)
    line = service.log_path(sid).read_bytes().splitlines()[-1]
    stored = service.get_session(sid)
    assert stored is not None
    resumed = SessionManager.resume(service, stored)
    assert resumed.events[-1] == UnknownEvent("hologram", data)
    resumed.manager.persist_events([*resumed.events, Text("still going")])
    assert line in service.log_path(sid).read_bytes().splitlines()
    assert service.verify(sid).unknown_types == {"hologram": 1}
    assert service.verify(sid).ok


def test_known_type_with_wrong_shape_is_unknown_not_fatal(service: LocalSessionService) -> None:
    manager = _persisted(service, events=1)
    service.append_event(manager.session_id, new_id(), manager.head_id, "i", "tool_result", '{"content": 3}')
    stored = service.get_session(manager.session_id)
    assert stored is not None
    resumed = SessionManager.resume(service, stored)
    assert resumed.events[-1] == UnknownEvent("tool_result", '{"content": 3}')
    assert [f.kind for f in service.verify(manager.session_id).findings] == ["bad_payload"]


def _insert_line_after(path: Path, line_number: int, junk: bytes) -> int:
    lines = path.read_bytes().splitlines(keepends=True)
    offset = sum(len(line) for line in lines[: line_number + 1])
    lines.insert(line_number + 1, junk + b"\n")
    path.write_bytes(b"".join(lines))
    return offset


def test_damaged_line_is_skipped_reported_and_kept(service: LocalSessionService) -> None:
    manager = _persisted(service, events=4)
    path = service.log_path(manager.session_id)
    junk = b'{"k":"event","id": garbage \xff\xfe'
    offset = _insert_line_after(path, 2, junk)
    fresh = LocalSessionService.open(service.root)
    with pytest.warns(DamagedLogWarning, match=str(offset)):
        events = fresh.load_events(manager.session_id)
    assert [msgspec.json.decode(e.event_data)["content"] for e in events] == ["m0", "m1", "m2", "m3"]
    report = fresh.verify(manager.session_id)
    assert not report.ok
    assert [(f.offset, f.kind) for f in report.findings] == [(offset, "damaged")]
    with pytest.warns(DamagedLogWarning):
        stored = fresh.find_resumable("/proj", None, 3600)
        assert stored is not None
        resumed = SessionManager.resume(fresh, stored)
    resumed.manager.persist_events([*resumed.events, Text("after damage")])
    assert junk + b"\n" in path.read_bytes()  # never deleted or rewritten
    with pytest.warns(DamagedLogWarning):
        assert len(fresh.load_events(manager.session_id)) == 5


def test_damaged_header_does_not_hide_the_session(service: LocalSessionService) -> None:
    manager = _persisted(service, events=2)
    path = service.log_path(manager.session_id)
    content = path.read_bytes()
    path.write_bytes(b"#" + content)  # break the first line only
    fresh = LocalSessionService.open(service.root)
    listed = fresh.list_sessions()
    assert [s.id for s in listed] == [manager.session_id]
    assert listed[0].event_count == 2
    with pytest.warns(DamagedLogWarning):
        assert len(fresh.load_events(manager.session_id)) == 2


def test_torn_tail_loads_and_is_repaired_by_the_next_append(service: LocalSessionService) -> None:
    manager = _persisted(service, events=3)
    path = service.log_path(manager.session_id)
    good = path.read_bytes()
    fragment = b'{"k":"event","id":"0193","parent":"x","ty'
    with open(path, "ab") as f:
        f.write(fragment)
    fresh = LocalSessionService.open(service.root)
    with pytest.warns(DamagedLogWarning):
        assert len(fresh.load_events(manager.session_id)) == 3
    stored = fresh.get_session(manager.session_id)
    assert stored is not None and stored.head_id == manager.head_id
    with pytest.warns(DamagedLogWarning):
        resumed = SessionManager.resume(fresh, stored)
    resumed.manager.persist_events([*resumed.events, Text("after the crash")])
    content = path.read_bytes()
    assert content.startswith(good) and fragment not in content
    assert all(line.startswith(b'{"k":') for line in content.splitlines())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(fresh.load_events(manager.session_id)) == 4
    kept = list((service.root / "trash").iterdir())
    assert [p.read_bytes() for p in kept] == [fragment]


# -- the log is the only source of truth -------------------------------------------------


def _everything(service: LocalSessionService) -> list[tuple[Any, ...]]:
    result = []
    for s in service.list_sessions(include_archived=True):
        result.append(
            (
                s.id,
                s.directory,
                s.git_root,
                s.server_session_id,
                s.created_at,
                s.updated_at,
                s.archived_at,
                s.head_id,
                service.get_metadata(s.id, "tracker"),
                service.get_metadata(s.id, "big"),
                [e.id for e in service.load_events(s.id)],
            )
        )
    return result


def test_deleting_everything_but_the_logs_loses_nothing(service: LocalSessionService) -> None:
    a = _persisted(service, "/a")
    a.persist_server_session_id("srv-a")
    a.set_metadata("tracker", '{"read": ["x.py"]}')
    a.set_metadata("big", "b" * 5000)
    b = _persisted(service, "/b")
    b.archive()
    before = _everything(service)
    service.close()
    for entry in service.root.iterdir():
        if entry.name != "sessions":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    fresh = LocalSessionService.open(service.root)
    assert _everything(fresh) == before
    found = fresh.find_resumable("/a", None, 3600)
    assert found is not None and found.id == a.session_id


def test_stale_index_is_brought_up_to_date_from_the_logs(service: LocalSessionService) -> None:
    manager = _persisted(service)
    service.close()
    index_before = (service.root / "index.jsonl").read_bytes()
    other = LocalSessionService.open(service.root)  # another process, say
    stored = other.get_session(manager.session_id)
    assert stored is not None
    resumed = SessionManager.resume(other, stored)
    resumed.manager.persist_events([*resumed.events, Text("more")])
    resumed.manager.set_metadata("k", "v")
    other.archive(manager.session_id)
    (service.root / "index.jsonl").write_bytes(index_before)  # as if the index never heard of it
    fresh = LocalSessionService.open(service.root)
    got = fresh.get_session(manager.session_id)
    assert got is not None
    assert got.head_id == resumed.manager.head_id and got.archived_at is not None
    assert fresh.get_metadata(manager.session_id, "k") == "v"


def test_damaged_index_is_ignored_and_rewritten(service: LocalSessionService) -> None:
    manager = _persisted(service)
    service.close()
    (service.root / "index.jsonl").write_bytes(b"\x00\x00 not json")
    fresh = LocalSessionService.open(service.root)
    assert [s.id for s in fresh.list_sessions()] == [manager.session_id]
    # The damaged bytes stay on a line of their own; the row saved after them reads back.
    lines = (service.root / "index.jsonl").read_bytes().splitlines()
    assert lines[0] == b"\x00\x00 not json"
    assert msgspec.json.decode(lines[-1])["session"]["id"] == manager.session_id


def test_index_saves_append_and_never_rewrite(service: LocalSessionService, monkeypatch: pytest.MonkeyPatch) -> None:
    manager = _persisted(service)
    replaced: list[tuple[str, str]] = []
    real_replace = _fs.replace

    def spy(src: Path, dst: Path) -> None:
        replaced.append((str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(_fs, "replace", spy)
    before = (service.root / "index.jsonl").read_bytes()
    service.archive(manager.session_id)
    service.set_metadata(manager.session_id, "k", "v")
    other = SessionManager.create_new(service, "/other", None)
    other.persist_events([UserMessage("hi")])
    service.list_sessions(include_archived=True)
    service.close()
    assert replaced == []
    assert (service.root / "index.jsonl").read_bytes().startswith(before)
    assert sorted(p.name for p in service.root.iterdir()) == ["index.jsonl", "locks", "sessions"]


def test_find_and_list_use_the_index_without_parsing_logs(
    service: LocalSessionService, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [_persisted(service, f"/p{n}", events=50).session_id for n in range(5)]
    service.close()

    def no_parsing(*args: object, **kwargs: object) -> object:
        raise AssertionError("a whole log was parsed")

    for module in (eventlog.summary, eventlog.reader):
        monkeypatch.setattr(module, "decode_each", no_parsing)
        monkeypatch.setattr(module, "decode_lines", no_parsing)
    fresh = LocalSessionService.open(service.root)
    found = fresh.find_resumable("/p3", None, 3600)
    assert found is not None and found.id == ids[3]
    assert {s.id for s in fresh.list_sessions()} == set(ids)


# -- find_resumable edges that need a controlled clock ----------------------------------


def _clock_at(monkeypatch: pytest.MonkeyPatch, now: dt.datetime) -> None:
    """Stop the store's clock (what it stamps on writes, and what find_resumable ages against)."""
    for module in (store, catalog, _logs):
        monkeypatch.setattr(module, "utcnow", lambda: now)


def test_max_age_is_strict(service: LocalSessionService, monkeypatch: pytest.MonkeyPatch) -> None:
    manager = _persisted(service)
    stored = service.get_session(manager.session_id)
    assert stored is not None
    at_edge = stored.updated_at + dt.timedelta(seconds=60)
    _clock_at(monkeypatch, at_edge)
    assert service.find_resumable("/proj", None, 60) is None
    _clock_at(monkeypatch, at_edge - dt.timedelta(microseconds=1))
    assert service.find_resumable("/proj", None, 60) is not None


def test_tie_on_updated_at_goes_to_the_larger_id(service: LocalSessionService, monkeypatch: pytest.MonkeyPatch) -> None:
    frozen = eventlog.utcnow()
    _clock_at(monkeypatch, frozen)
    ids = sorted(new_id() for _ in range(3))
    for sid in (ids[1], ids[2], ids[0]):
        service.create_session(sid, "/same", None)
    _clock_at(monkeypatch, frozen + dt.timedelta(seconds=1))
    for _ in range(3):  # the same answer every time, from any service
        found = LocalSessionService.open(service.root).find_resumable("/same", None, 3600)
        assert found is not None and found.id == ids[2]


# -- bad input and unsafe files ---------------------------------------------------------


@pytest.mark.parametrize(
    "bad_id",
    ["../../escape", "/etc/passwd", "a/b", "x\x00y", "\uff10\uff11a21030-374a-71ea-9237-6b4a56659e99", "..", 42, None],
)
def test_bad_ids_are_refused_before_any_path_is_built(service: LocalSessionService, bad_id: Any) -> None:
    before = sorted(p.name for p in service.root.rglob("*"))
    with pytest.raises(ValueError):
        service.log_path(bad_id)
    with pytest.raises(ValueError):
        service.create_session(bad_id, None, None)
    with pytest.raises(ValueError):
        service.load_events(bad_id)
    assert sorted(p.name for p in service.root.rglob("*")) == before


def test_symlinked_log_is_refused(service: LocalSessionService, tmp_path: Path) -> None:
    manager = _persisted(service)
    path = service.log_path(manager.session_id)
    elsewhere = tmp_path / "elsewhere.jsonl"
    path.rename(elsewhere)
    path.symlink_to(elsewhere)
    fresh = LocalSessionService.open(service.root)
    with pytest.raises(UnsafeStorePath, match="symlink"):
        fresh.load_events(manager.session_id)
    with pytest.raises(UnsafeStorePath):
        fresh.append_event(manager.session_id, new_id(), manager.head_id, "i", "text", '{"content":"x"}')
    with pytest.warns(DamagedLogWarning, match="symlink"):
        assert fresh.list_sessions() == []
    assert elsewhere.read_bytes().count(b"\n") == 4


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_files_are_private_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        service = LocalSessionService.open(tmp_path / "store")
        manager = _persisted(service)
        service.close()
    finally:
        os.umask(old)
    root = tmp_path / "store"
    for directory in (root, root / "sessions", root / "locks"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    for file in (service.log_path(manager.session_id), root / "index.jsonl"):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


def test_store_path_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UnsafeStorePath, match="not a directory"):
        LocalSessionService.open(tmp_path / "file")


def test_session_not_found_is_a_key_error_with_a_readable_message(service: LocalSessionService) -> None:
    sid = new_id()
    with pytest.raises(KeyError) as excinfo:
        service.load_events(sid)
    assert isinstance(excinfo.value, SessionNotFound)
    assert str(excinfo.value) == f"no session {sid} in {service.root}"


def test_every_line_is_one_json_object_with_a_format_version(service: LocalSessionService) -> None:
    manager = _persisted(service)
    manager.set_metadata("k", "v")
    manager.persist_server_session_id("s")
    lines = service.log_path(manager.session_id).read_bytes().splitlines()
    decoded = [msgspec.json.decode(line) for line in lines]
    assert all(isinstance(d, dict) for d in decoded)
    assert decoded[0]["k"] == "log" and decoded[0]["v"] == eventlog.FORMAT_VERSION
    assert decoded[0]["id"] == manager.session_id
    assert {d["k"] for d in decoded[1:]} == {"event", "fact"}


def test_tool_result_round_trip(service: LocalSessionService) -> None:
    manager = SessionManager.create_new(service, "/p", None)
    events: list[Any] = [ToolResult("c1", "out", True, remote=True, content_length=3), ToolResult("c2", "x", False)]
    manager.persist_events(events)
    stored = service.get_session(manager.session_id)
    assert stored is not None
    assert SessionManager.resume(service, stored).events == events


def _records(service: LocalSessionService, session_id: str) -> Iterator[eventlog.Record]:
    yield from read_log(service.log_path(session_id)).records


def test_a_session_named_index_has_its_own_lock(tmp_path: Path) -> None:
    """The index's lock file is named so that no session id can take its name."""
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/p", None, session_id="index")
    manager.persist_events([UserMessage("x")])
    with service._index._lock.held():  # the index is being compacted: the session "index" is not busy for that
        manager.persist_events([UserMessage("x"), Text("y")])
    assert len(service.load_events("index")) == 2
