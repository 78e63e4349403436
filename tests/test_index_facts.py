"""A saved index with fact values in it loads again (it used to fail on every kept value).

``FactRef.value`` was typed ``Raw | None``, which msgspec decodes from null only
(msgspec#659): any index holding a kept value (an archive flag, a server id)
was thrown away on load and rebuilt by reading every log, which made
``find_resumable`` on 10,000 sessions take a second (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import msgspec
import pytest

from eventlog import FactRef
from sessions import LocalSessionService, SessionManager, UserMessage
from sessions.index import SessionIndex


def _store(root: Path) -> tuple[list[str], str]:
    long_value = "x" * 5000  # too long to keep in the index: read from the log
    ids = []
    with LocalSessionService.open(root, durability="flush") as service:
        for i in range(5):
            manager = SessionManager.create_new(service, f"/p{i}", None)
            manager.persist_events([UserMessage(f"hello {i}")])
            manager.persist_server_session_id(f"srv-{i}")
            manager.set_metadata("tracker", long_value)
            manager.set_metadata("small", f"v{i}")
            if i % 2:
                manager.archive()
            ids.append(manager.session_id)
    return ids, long_value


def test_saved_index_with_kept_values_loads(tmp_path: Path) -> None:
    ids, long_value = _store(tmp_path)
    index = SessionIndex(tmp_path / "index-logs.json", tmp_path / "locks" / "index.lock", tmp_path / "index.json")
    index.load()
    assert sorted(index.entries) == sorted(ids)
    assert not index.dirty, "the saved index was rejected and would be rebuilt from the logs"
    entry = index.entries[ids[1]].log
    archived = entry.fact("archived")
    assert archived is not None and archived.value is not None and bytes(archived.value) == b"true"
    tracker = entry.fact("metadata", "tracker")
    assert tracker is not None and tracker.value is None and tracker.length > len(long_value)
    with LocalSessionService.open(tmp_path) as service:
        sessions = {s.id: s for s in service.list_sessions(include_archived=True)}
        assert [sessions[i].server_session_id for i in ids] == [f"srv-{i}" for i in range(5)]
        assert [sessions[i].archived_at is not None for i in ids] == [bool(i % 2) for i in range(5)]
        assert service.get_metadata(ids[3], "tracker") == long_value
        assert service.get_metadata(ids[3], "small") == "v3"


def test_fact_ref_round_trips_kept_and_not_kept_values() -> None:
    now = dt.datetime.now(dt.UTC)
    kept = FactRef(ts=now, id="a", offset=10, length=20, inline=msgspec.Raw(b'"srv"'))
    not_kept = FactRef(ts=now, id="b", offset=30, length=9000)
    decoded = msgspec.json.decode(msgspec.json.encode([kept, not_kept]), type=list[FactRef])
    assert decoded[0].value is not None and bytes(decoded[0].value) == b'"srv"'
    assert decoded[1].value is None
    not_kept.value = msgspec.Raw(b"false")
    assert not_kept.value is not None and bytes(not_kept.value) == b"false"
    not_kept.value = None
    assert not_kept.value is None


def test_index_written_before_the_fix_still_reads_right(tmp_path: Path) -> None:
    """Old indexes wrote ``"value": null`` for a value not kept; it must not be taken for a kept null."""
    ids, long_value = _store(tmp_path)
    index_path = tmp_path / "index-logs.json"
    saved = msgspec.json.decode(index_path.read_bytes())
    for entry in saved["sessions"].values():
        for keys in entry["log"]["facts"].values():
            for ref in keys.values():
                ref.setdefault("value", None)
    index_path.write_bytes(msgspec.json.encode(saved))
    with LocalSessionService.open(tmp_path) as service:
        assert service.get_metadata(ids[0], "tracker") == long_value
        assert service.get_metadata(ids[0], "small") == "v0"


def test_entries_are_decoded_only_when_used(tmp_path: Path) -> None:
    ids, _ = _store(tmp_path)
    index = SessionIndex(tmp_path / "index-logs.json", tmp_path / "locks" / "index.lock", tmp_path / "index.json")
    index.load()
    assert index.entries.place(ids[2]) == ("/p2", None)
    assert index.entries.loaded_sizes == {}, "placing a session decoded its log summary"
    assert index.entries[ids[2]].log.events == 1
    assert list(index.entries.loaded_sizes) == [ids[2]]
    assert index.save()
    again = SessionIndex(tmp_path / "index-logs.json", tmp_path / "locks" / "index.lock", tmp_path / "index.json")
    again.load()
    assert {sid: e.log for sid, e in again.entries.snapshot().items()} == {
        sid: e.log for sid, e in index.entries.snapshot().items()
    }


def test_a_damaged_summary_costs_only_its_own_session(tmp_path: Path) -> None:
    ids, _ = _store(tmp_path)
    index_path = tmp_path / "index-logs.json"
    saved = msgspec.json.decode(index_path.read_bytes())
    saved["sessions"][ids[0]]["log"] = {"size": "not a number"}
    index_path.write_bytes(msgspec.json.encode(saved))
    (tmp_path / "index.json").unlink()  # without rows, the answers come from the summaries
    with LocalSessionService.open(tmp_path) as service:
        found = service.find_resumable("/p0", None, 3600)
        assert found is not None and found.id == ids[0] and found.event_count == 1
        listed = service.list_sessions(include_archived=True)
        assert sorted(s.id for s in listed) == sorted(ids)
    index = SessionIndex(index_path, tmp_path / "locks" / "index.lock", tmp_path / "index.json")
    index.load()
    assert index.entries[ids[0]].log.events == 1  # find_resumable rewrote it from the log


def test_find_resumable_sees_logs_added_by_another_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sessions.service

    # Trust listings at once, so only the folder's mtime tells a reused listing from a stale one.
    monkeypatch.setattr(sessions.service, "LISTING_TRUSTED_AFTER_NS", -(10**12))
    ids, _ = _store(tmp_path)
    reader = LocalSessionService.open(tmp_path)
    assert reader.find_resumable("/p2", None, 3600) is not None
    assert reader.find_resumable("/p9", None, 3600) is None
    with LocalSessionService.open(tmp_path, durability="flush") as writer:
        manager = SessionManager.create_new(writer, "/p9", None)
        manager.persist_events([UserMessage("from elsewhere")])
    found = reader.find_resumable("/p9", None, 3600)
    assert found is not None and found.id == manager.session_id
    assert sorted(s.id for s in reader.list_sessions(include_archived=True)) == sorted([*ids, manager.session_id])


def test_find_resumable_agrees_with_a_scan_of_every_session(tmp_path: Path) -> None:
    with LocalSessionService.open(tmp_path, durability="flush") as service:
        for i in range(40):
            manager = SessionManager.create_new(service, f"/d{i % 4}", f"/g{i % 3}" if i % 2 else None)
            manager.persist_events([UserMessage(str(i))])
            if i % 5 == 0:
                manager.archive()
    for reopened in (False, True):
        service = LocalSessionService.open(tmp_path)
        if reopened:
            service.list_sessions()  # warm: the index is loaded and every entry current
        every = service.list_sessions(include_archived=False)
        for directory, git_root in [("/d1", None), (None, "/g2"), ("/d0", "/g1"), ("/nowhere", None)]:
            matching = [s for s in every if s.directory == directory or (git_root and s.git_root == git_root)]
            expected = max(matching, key=lambda s: (s.updated_at, s.id)).id if matching else None
            found = service.find_resumable(directory, git_root, 3600)
            assert (found.id if found else None) == expected, (directory, git_root, reopened)
