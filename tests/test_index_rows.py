"""The index rows (``index.json``): listing and finding sessions without the summaries.

A new process answers ``find_resumable`` and ``list_sessions`` from the rows
while each log is exactly the bytes its row covers, and from the saved folder
listing while the folder is unchanged and that listing was trusted. Anything
else goes back to the summaries (``index-logs.json``) and the logs.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import msgspec
import pytest

import sessions.index
from eventlog import LogFile
from sessions import LocalSessionService, SessionManager, StoredSession, UserMessage

SUMMARIES = "index-logs.json"
ROWS = "index.json"


class _Refused:
    """A decoder that fails the test if the summaries file is read at all."""

    def decode(self, data: bytes) -> object:
        raise AssertionError("the summaries file was decoded")


def _store(root: Path) -> list[str]:
    """Three sessions in /p (the last archived, one with a server id too long to keep in a row) and one in /q."""
    ids = []
    with LocalSessionService.open(root, durability="flush") as service:
        for i, place in enumerate(["/p", "/p", "/p", "/q"]):
            manager = SessionManager.create_new(service, place, None)
            manager.persist_events([UserMessage(f"hello {j}") for j in range(i + 1)])
            manager.persist_server_session_id(f"srv-{i}-" + "x" * (2000 if i == 1 else 0))
            if i == 2:
                manager.archive()
            ids.append(manager.session_id)
    return ids


def _age_folder(root: Path) -> None:
    """Make ``ROOT/sessions`` look untouched for a minute, so a listing of it is trusted."""
    old = time.time_ns() - 60 * 10**9
    os.utime(root / "sessions", ns=(old, old))


def _new_session(root: Path) -> SessionManager:
    """A session in /new, created by another service that is never closed (so it saves no index)."""
    manager = SessionManager.create_new(LocalSessionService.open(root), "/new", None)
    manager.persist_events([UserMessage("hi")])
    return manager


def _listed(root: Path) -> list[StoredSession]:
    with LocalSessionService.open(root) as service:
        return service.list_sessions(include_archived=True)


def test_cold_find_and_list_answer_from_the_rows_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = _store(tmp_path)
    expected = _listed(tmp_path)
    monkeypatch.setattr(sessions.index, "_decoder", _Refused())
    with LocalSessionService.open(tmp_path) as service:
        found = service.find_resumable("/p", None, 3600)
        assert found == next(s for s in expected if s.id == ids[1])
        assert found is not None and found.server_session_id == "srv-1-" + "x" * 2000  # read from its log line
        assert found.event_count == 2
        assert service.list_sessions(include_archived=True) == expected
        assert [s.id for s in service.list_sessions()] == [ids[3], ids[1], ids[0]]


def test_a_trusted_listing_is_reused_by_a_new_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = _store(tmp_path)
    _age_folder(tmp_path)
    with LocalSessionService.open(tmp_path) as service:
        assert service.find_resumable("/q", None, 3600) is not None  # lists the folder, saves the listing
    saved = msgspec.json.decode((tmp_path / ROWS).read_bytes())
    assert saved["format"] == 2 and saved["listing"]["mtime_ns"] == os.stat(tmp_path / "sessions").st_mtime_ns

    def no_listdir(path: object) -> list[str]:
        raise AssertionError(f"listed {path}")

    monkeypatch.setattr(os, "listdir", no_listdir)
    with LocalSessionService.open(tmp_path) as service:
        found = service.find_resumable("/q", None, 3600)
        assert found is not None and found.id == ids[3]
        assert sorted(s.id for s in service.list_sessions(include_archived=True)) == sorted(ids)


def test_a_log_appended_by_another_process_is_not_answered_from_its_row(tmp_path: Path) -> None:
    ids = _store(tmp_path)
    other = LocalSessionService.open(tmp_path, durability="flush")
    stored = other.get_session(ids[0])
    assert stored is not None
    resumed = SessionManager.resume(other, stored)
    manager = resumed.manager
    manager.persist_events([*resumed.events, UserMessage("later")])  # the rows do not know: saved on close
    fresh = LocalSessionService.open(tmp_path)
    found = fresh.find_resumable("/p", None, 3600)
    assert found is not None and found.id == ids[0]
    assert (found.event_count, found.head_id) == (2, manager.head_id)
    listed = {s.id: s for s in fresh.list_sessions()}
    assert (listed[ids[0]].event_count, listed[ids[0]].head_id) == (2, manager.head_id)
    other.close()


@pytest.mark.parametrize("name", [ROWS, SUMMARIES])
def test_deleting_either_index_file_loses_nothing(tmp_path: Path, name: str) -> None:
    ids = _store(tmp_path)
    expected = _listed(tmp_path)
    (tmp_path / name).unlink()
    with LocalSessionService.open(tmp_path) as service:
        assert service.list_sessions(include_archived=True) == expected
        found = service.find_resumable("/p", None, 3600)
        assert found is not None and found.id == ids[1]
        assert service.get_metadata(ids[0], "missing") is None
    assert (tmp_path / ROWS).exists()
    assert _listed(tmp_path) == expected


@pytest.mark.parametrize(
    "data",
    [b"\x00 not json", b'{"format":1,"sessions":{}}', b'{"format":2,"sessions":{"x":{"size":"big"}}}'],
    ids=["garbage", "old format", "wrong shape"],
)
def test_unreadable_rows_are_ignored_and_rewritten(tmp_path: Path, data: bytes) -> None:
    _store(tmp_path)
    expected = _listed(tmp_path)
    (tmp_path / ROWS).write_bytes(data)
    assert _listed(tmp_path) == expected
    rewritten = msgspec.json.decode((tmp_path / ROWS).read_bytes())
    assert rewritten["format"] == 2 and sum(map(len, rewritten["places"].values())) == len(expected)


def test_a_session_added_within_the_listing_mtime_tick_is_found(tmp_path: Path) -> None:
    """Git's "racily clean" case: a log added without moving the folder's mtime (a coarse clock)."""
    _store(tmp_path)
    folder = tmp_path / "sessions"
    with LocalSessionService.open(tmp_path) as service:
        before = os.stat(folder)
        assert service.find_resumable("/new", None, 3600) is None  # lists the folder, too fresh to trust
        newer = _new_session(tmp_path)
        os.utime(folder, ns=(before.st_atime_ns, before.st_mtime_ns))  # as if within the same tick
        found = service.find_resumable("/new", None, 3600)
        assert found is not None and found.id == newer.session_id
    with LocalSessionService.open(tmp_path) as fresh:
        found = fresh.find_resumable("/new", None, 3600)
        assert found is not None and found.id == newer.session_id


def test_a_session_added_after_a_trusted_listing_is_found(tmp_path: Path) -> None:
    _store(tmp_path)
    _age_folder(tmp_path)
    with LocalSessionService.open(tmp_path) as service:
        assert service.find_resumable("/new", None, 3600) is None  # saves a trusted listing
    newer = _new_session(tmp_path)
    with LocalSessionService.open(tmp_path) as fresh:
        found = fresh.find_resumable("/new", None, 3600)
        assert found is not None and found.id == newer.session_id
        assert newer.session_id in {s.id for s in fresh.list_sessions()}


def test_a_deleted_session_is_not_listed_from_its_row(tmp_path: Path) -> None:
    ids = _store(tmp_path)
    _age_folder(tmp_path)
    _listed(tmp_path)
    (tmp_path / "sessions" / f"{ids[3]}.jsonl").unlink()
    with LocalSessionService.open(tmp_path) as service:
        assert service.find_resumable("/q", None, 3600) is None
        assert ids[3] not in {s.id for s in service.list_sessions(include_archived=True)}
    places = msgspec.json.decode((tmp_path / ROWS).read_bytes())["places"]
    assert ids[3] not in {session_id for rows in places.values() for session_id in rows}


def test_an_index_from_before_the_split_is_used_not_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store whose ``index.json`` still holds the summaries (format 1) is not rebuilt by reading every log."""
    _store(tmp_path)
    expected = _listed(tmp_path)
    (tmp_path / SUMMARIES).replace(tmp_path / ROWS)

    def no_reading(*args: object, **kwargs: object) -> object:
        raise AssertionError("a log was read although its summary was current")

    with monkeypatch.context() as patched:
        patched.setattr(LogFile, "state", no_reading)
        assert _listed(tmp_path) == expected
    assert msgspec.json.decode((tmp_path / ROWS).read_bytes())["format"] == 2
    assert msgspec.json.decode((tmp_path / SUMMARIES).read_bytes())["format"] == 1
    assert _listed(tmp_path) == expected


def test_a_damaged_group_of_rows_is_ignored_and_rewritten(tmp_path: Path) -> None:
    """Groups are decoded only when asked for: one found damaged then drops every row, and the logs answer."""
    ids = _store(tmp_path)
    _age_folder(tmp_path)
    expected = _listed(tmp_path)  # saves a trusted listing, so a new process takes the per-group way
    saved = msgspec.json.decode((tmp_path / ROWS).read_bytes())
    assert saved["listing"]["mtime_ns"] == os.stat(tmp_path / "sessions").st_mtime_ns
    saved["places"]["/p"] = {ids[0]: {"size": "not a number"}}
    (tmp_path / ROWS).write_bytes(msgspec.json.encode(saved))
    with LocalSessionService.open(tmp_path) as service:
        found = service.find_resumable("/p", None, 3600)
        assert found == next(s for s in expected if s.id == ids[1])
        assert service.list_sessions(include_archived=True) == expected
    rewritten = msgspec.json.decode((tmp_path / ROWS).read_bytes())
    assert sorted(rewritten["places"]["/p"]) == sorted(ids[:3])
