"""Conflict copies laid down as Syncthing and Dropbox name them: union on read, merge, converge."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import msgspec
import pytest

from eventlog import KIND_FACT, Record, encode_records, verify_log
from sessions import LocalSessionService, SessionConflict, SessionManager, UserMessage
from sessions.conflicts import (
    conflict_copies,
    conflict_copy_session,
    merge_conflict_copies,
    sync_template,
    write_sync_templates,
)
from tests.support.sync_helpers import (
    DROPBOX_COPY,
    SYNCTHING_COPY,
    all_event_ids,
    clone,
    contents,
    continue_session,
    new_session,
    open_store,
    raw_event_ids,
    view,
)

SID = "0193a3b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (f"{SID}.sync-conflict-20261125-010203-ABCDEF7.jsonl", SID),
        (f"{SID}.sync-conflict-20261125-010203-ABCDEF7.sync-conflict-20261126-000000-ZZZZ234.jsonl", SID),
        (f"{SID} (laptop's conflicted copy 2026-11-25).jsonl", SID),
        (f"{SID} (Jane Doe's conflicted copy 2026-11-25) (1).jsonl", SID),
        (f"{SID} (conflicted copy 2026-11-25 101112).jsonl", SID),
        (f"{SID}.jsonl~", SID),
        (f"{SID}.jsonl", None),
        (f".syncthing.{SID}.jsonl.tmp", None),
        (f"~syncthing~{SID}.jsonl.tmp", None),
        (f".{SID}.jsonl.merge-12.tmp", None),
        (f".{SID}.jsonl.Xa81Qz", None),  # rsync's temporary file
        (f"{SID}.jsonl.lock", None),
        (".dropbox", None),
        (".dropbox.cache", None),
        (f"{SID}.sync-conflict-2026-11-25-ABCDEF7.jsonl", None),
        # An application's own ids (sessions.protocol.check_session_id) have copies too.
        (f"{SID.upper()}.sync-conflict-20261125-010203-ABCDEF7.jsonl", None),  # a UUID id is lower case
        ("thread.v2.sync-conflict-20261125-010203-ABCDEF7.jsonl", "thread.v2"),
        ("chat_7 (laptop's conflicted copy 2026-11-25).jsonl", "chat_7"),
        ("chat_7.jsonl~", "chat_7"),
        (".hidden.sync-conflict-20261125-010203-ABCDEF7.jsonl", None),
        ("a b.jsonl~", None),
        (f"{SID} (laptop's conflicted copy 2026-11-25).json", None),
    ],
)
def test_conflict_copy_names(name: str, expected: str | None) -> None:
    assert conflict_copy_session(name) == expected


def _diverged(tmp_path: Path) -> tuple[LocalSessionService, LocalSessionService, str]:
    """Machine A and machine B share one session of 2 turns; then A adds 2 turns and B adds 1."""
    a = open_store(tmp_path / "a")
    sid = new_session(a, "/proj", "one", "two")
    clone(tmp_path / "a", tmp_path / "b")
    b = open_store(tmp_path / "b")
    continue_session(a, sid, "a3", "a4")
    continue_session(b, sid, "b3")
    return a, b, sid


def _lay_copy(dst: LocalSessionService, src: LocalSessionService, sid: str, pattern: str) -> Path:
    """What the sync tool does on ``dst``: the other machine's version lands beside the log."""
    copy = dst.sessions_dir / pattern.format(sid=sid)
    copy.write_bytes(src.log_path(sid).read_bytes())
    return copy


def test_an_application_ids_copy_is_merged(tmp_path: Path) -> None:
    a = open_store(tmp_path / "a")
    manager = SessionManager.create_new(a, "/proj", session_id="Thread.7")
    manager.persist_events([UserMessage("one")])
    clone(tmp_path / "a", tmp_path / "b")
    b = open_store(tmp_path / "b")
    continue_session(a, "Thread.7", "a2")
    continue_session(b, "Thread.7", "b2")
    _lay_copy(a, b, "Thread.7", SYNCTHING_COPY)
    assert a.copies_of("Thread.7")
    assert a.load_tree("Thread.7").forked
    (result,) = merge_conflict_copies(a, dry_run=False)
    assert result.written and not a.copies_of("Thread.7")
    texts = {msgspec.json.decode(e.event_data)["content"] for e in a.load_tree("Thread.7").events}
    assert {"one", "a2", "b2"} <= texts


def test_conflict_copy_loads_as_union_with_both_branches(tmp_path: Path) -> None:
    a, b, sid = _diverged(tmp_path)
    expected_ids = raw_event_ids(a.log_path(sid)) | raw_event_ids(b.log_path(sid))
    assert len(expected_ids) == 4 + 4 + 2
    _lay_copy(a, b, sid, SYNCTHING_COPY)

    tree = a.load_tree(sid)
    assert sorted(e.id for e in tree.events) == sorted(expected_ids)
    assert tree.forked and len(tree.heads) == 2
    # A's branch is deeper (4 turns against 3), so it is the active one wherever this is computed.
    assert contents(a, sid) == ["one", "reply to one", "two", "reply to two", "a3", "reply to a3", "a4", "reply to a4"]
    branches = [[msgspec.json.decode(e.event_data)["content"] for e in branch] for branch in tree.branches()]
    assert branches[1] == ["one", "reply to one", "two", "reply to two", "b3", "reply to b3"]
    stored = a.get_session(sid)
    assert stored is not None
    assert stored.head_id == tree.active_head
    assert stored.event_count == len(expected_ids)
    assert [s.head_id for s in a.list_sessions()] == [tree.active_head]
    assert a.find_resumable("/proj", None, 3600) == stored


def test_both_sides_converge_to_the_same_bytes(tmp_path: Path) -> None:
    a, b, sid = _diverged(tmp_path)
    a.set_metadata(sid, "k", "from a")
    b.set_metadata(sid, "k", "from b")  # written later: it wins on both sides
    _lay_copy(a, b, sid, SYNCTHING_COPY)
    _lay_copy(b, a, sid, DROPBOX_COPY)

    assert view(a) == view(b)
    assert a.get_metadata(sid, "k") == "from b"

    for store in (a, b):
        (result,) = merge_conflict_copies(store, dry_run=False)
        assert result.written and result.forked and not result.kept and result.error is None
        assert conflict_copies(store.sessions_dir) == {}
    assert a.log_path(sid).read_bytes() == b.log_path(sid).read_bytes()
    assert view(a) == view(b)
    report = verify_log(a.log_path(sid))
    assert report.ok and report.forked
    assert not [f for f in report.findings if f.kind in ("duplicate", "gap", "header")]


def test_merge_keeps_copies_in_trash_and_is_idempotent(tmp_path: Path) -> None:
    a, b, sid = _diverged(tmp_path)
    copy = _lay_copy(a, b, sid, SYNCTHING_COPY)
    copy_bytes = copy.read_bytes()
    log_before = a.log_path(sid).read_bytes()
    ids_before = raw_event_ids(a.log_path(sid))

    (dry,) = merge_conflict_copies(a, dry_run=True)
    assert dry.added_events == 2 and dry.forked and not dry.written
    assert a.log_path(sid).read_bytes() == log_before and copy.exists()

    (done,) = merge_conflict_copies(a, dry_run=False)
    assert done.added_events == 2 and done.written
    assert not copy.exists()
    assert [p.read_bytes() for p in done.trashed] == [copy_bytes]
    assert done.trashed[0].parent == a.trash_dir
    assert raw_event_ids(a.log_path(sid)) == raw_event_ids(b.log_path(sid)) | ids_before
    merged = a.log_path(sid).read_bytes()
    assert merge_conflict_copies(a, dry_run=False) == []
    assert a.log_path(sid).read_bytes() == merged


def test_append_after_conflict_merges_and_keeps_both_branches(tmp_path: Path) -> None:
    a, b, sid = _diverged(tmp_path)
    copy = _lay_copy(a, b, sid, SYNCTHING_COPY)
    union_ids = set(all_event_ids(a, sid))

    continue_session(a, sid, "a5")  # resumes the active branch and appends to it

    assert not copy.exists(), "the append merged the copy first"
    assert (a.trash_dir / copy.name).read_bytes() == b.log_path(sid).read_bytes()
    tree = a.load_tree(sid)
    assert {e.id for e in tree.events} == union_ids | {e.id for e in a.load_events(sid)[-2:]}
    assert len(tree.heads) == 2
    assert contents(a, sid)[-2:] == ["a5", "reply to a5"]
    assert verify_log(a.log_path(sid)).ok


def test_shorter_branch_writer_gets_a_conflict_not_a_silent_fork(tmp_path: Path) -> None:
    """B's process resumed before A's longer branch arrived; its next write must not fork silently."""
    a, b, sid = _diverged(tmp_path)
    stored = b.get_session(sid)
    assert stored is not None
    resumed = SessionManager.resume(b, stored)
    _lay_copy(b, a, sid, SYNCTHING_COPY)
    from sessions import UserMessage

    with pytest.raises(SessionConflict):
        resumed.manager.persist_events([*resumed.events, UserMessage(content="b4")])
    ids = set(all_event_ids(b, sid))
    assert ids == raw_event_ids(a.log_path(sid)) | raw_event_ids(b.log_path(sid))
    continue_session(b, sid, "b4")  # resuming again continues the active (A's) branch
    assert contents(b, sid)[-4:] == ["a4", "reply to a4", "b4", "reply to b4"]


def test_facts_merge_per_key_last_writer_wins_with_id_tiebreak(tmp_path: Path) -> None:
    a = open_store(tmp_path / "a")
    sid = new_session(a, "/proj", "one")
    clone(tmp_path / "a", tmp_path / "b")
    b = open_store(tmp_path / "b")
    ts = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)

    def fact(store: LocalSessionService, fid: str, name: str, key: str | None, value: object) -> None:
        record = Record(k=KIND_FACT, id=fid, ts=ts, type=name, key=key, data=msgspec.Raw(msgspec.json.encode(value)))
        with open(store.log_path(sid), "ab") as f:
            f.write(encode_records([record]))

    # Same timestamp on both machines: the larger id wins, whichever side it came from.
    fact(a, "0193a3b4-0000-7000-8000-00000000000b", "metadata", "k", "a wins on id")
    fact(b, "0193a3b4-0000-7000-8000-00000000000a", "metadata", "k", "b loses on id")
    fact(a, "0193a3b4-0000-7000-8000-000000000001", "server_session_id", None, "srv-a")
    fact(b, "0193a3b4-0000-7000-8000-000000000002", "server_session_id", None, "srv-b")
    b.archive(sid)  # now (before 2030) on b: archived, but ...
    fact(a, "0193a3b4-0000-7000-8000-000000000003", "archived", None, False)  # ... a's later unarchive wins
    _lay_copy(a, b, sid, SYNCTHING_COPY)
    _lay_copy(b, a, sid, DROPBOX_COPY)

    for store in (a, b):
        stored = store.get_session(sid)
        assert stored is not None
        assert store.get_metadata(sid, "k") == "a wins on id"
        assert stored.server_session_id == "srv-b"
        assert stored.archived_at is None
    assert view(a) == view(b)


def test_large_metadata_in_a_copy_is_read_from_the_union(tmp_path: Path) -> None:
    a = open_store(tmp_path / "a")
    sid = new_session(a, "/proj", "one")
    clone(tmp_path / "a", tmp_path / "b")
    b = open_store(tmp_path / "b")
    big = "x" * 5000  # beyond what the summary keeps inline
    b.set_metadata(sid, "tracker", big)
    a.set_metadata(sid, "other", "y" * 3000)
    _lay_copy(a, b, sid, SYNCTHING_COPY)
    assert a.get_metadata(sid, "tracker") == big
    assert a.get_metadata(sid, "other") == "y" * 3000


def test_sync_tool_files_are_ignored(tmp_path: Path) -> None:
    a = open_store(tmp_path / "a")
    sid = new_session(a, "/proj", "one", "two")
    before = view(a)
    junk = {
        f".syncthing.{sid}.jsonl.tmp": b'{"k":"event","id":"half',
        f"~syncthing~{sid}.jsonl.tmp": b"\x00\x00garbage",
        f".{sid}.jsonl.Xa81Qz": b'{"k":"event"',
        ".dropbox": b"{}",
        f"{sid}.jsonl.lock": b"",
        "0193a3b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b.sync-conflict-bogus.jsonl": b"not json\n",
    }
    for name, data in junk.items():
        (a.sessions_dir / name).write_bytes(data)
    (a.sessions_dir / ".dropbox.cache").mkdir()
    (a.root / ".stfolder").mkdir()
    # pytest turns any DamagedLogWarning into an error, so none may be raised here.
    assert view(a) == before
    assert conflict_copies(a.sessions_dir) == {}
    assert merge_conflict_copies(a, dry_run=False) == []
    continue_session(a, sid, "three")
    assert contents(a, sid)[-2:] == ["three", "reply to three"]


def test_copy_of_a_missing_log_is_adopted_by_merge(tmp_path: Path) -> None:
    a = open_store(tmp_path / "a")
    sid = new_session(a, "/proj", "one")
    log = a.log_path(sid)
    data = log.read_bytes()
    os.unlink(log)
    copy = a.sessions_dir / DROPBOX_COPY.format(sid=sid)
    copy.write_bytes(data)
    assert a.get_session(sid) is None  # a copy alone is not a session until merged
    (result,) = merge_conflict_copies(a, dry_run=False)
    assert result.written and not copy.exists()
    assert log.read_bytes() == data
    assert contents(a, sid) == ["one", "reply to one"]


def test_damaged_copy_warns_and_loses_nothing(tmp_path: Path) -> None:
    from sessions import DamagedLogWarning

    a, b, sid = _diverged(tmp_path)
    copy = _lay_copy(a, b, sid, SYNCTHING_COPY)
    with open(copy, "ab") as f:
        f.write(b"{not json}\n")
    with pytest.warns(DamagedLogWarning, match="conflict copy"):
        ids = set(all_event_ids(a, sid))
    assert ids == raw_event_ids(a.log_path(sid)) | raw_event_ids(b.log_path(sid))
    (result,) = merge_conflict_copies(a, dry_run=False)
    assert b"{not json}\n" in a.log_path(sid).read_bytes(), "damaged lines are kept, not dropped"
    assert result.trashed[0].read_bytes().endswith(b"{not json}\n")


def test_templates_are_written_once_and_documented(tmp_path: Path) -> None:
    a = open_store(tmp_path / "a")
    written = write_sync_templates(a.root)
    assert sorted(p.name for p in written) == [".gitattributes", ".gitignore", ".stignore"]
    assert "*.jsonl merge=union" in (a.root / ".gitattributes").read_text()
    for name in (".gitignore", ".stignore"):
        text = (a.root / name).read_text()
        assert "/index.json" in text and "/locks" in text and "/trash" in text
    (a.root / ".gitignore").write_text("mine\n")
    assert write_sync_templates(a.root) == []
    assert (a.root / ".gitignore").read_text() == "mine\n"
    assert write_sync_templates(a.root, overwrite=True) and (a.root / ".gitignore").read_text() == sync_template(
        ".gitignore"
    )
    docs = (Path(__file__).parent.parent.parent / "docs" / "SYNC.md").read_text()
    for name in (".gitattributes", ".gitignore", ".stignore"):
        assert sync_template(name) in docs, f"docs/SYNC.md must show the {name} template as shipped"


def test_a_store_written_log_merges_to_itself(tmp_path: Path) -> None:
    from eventlog.merge import merge_logs

    a = open_store(tmp_path / "a")
    sid = new_session(a, "/proj", "one", "two")
    a.set_metadata(sid, "k", "v")
    a.update_server_session_id(sid, "srv")
    continue_session(a, sid, "three")
    a.archive(sid)
    log = a.log_path(sid).read_bytes()
    assert merge_logs([log]).data == log
    assert merge_conflict_copies(a, dry_run=False) == []


def test_busy_session_is_reported_and_its_copies_stay(tmp_path: Path) -> None:
    import filelock

    a, b, sid = _diverged(tmp_path)
    copy = _lay_copy(a, b, sid, SYNCTHING_COPY)
    log_before = a.log_path(sid).read_bytes()
    impatient = LocalSessionService.open(a.root, lock_timeout=0.05, durability="flush")
    with filelock.FileLock(a.locks_dir / f"{sid}.lock"):  # another writer is appending
        (result,) = merge_conflict_copies(impatient, dry_run=False)
    assert result.error is not None and "busy" in result.error
    assert result.kept == [copy] and copy.exists()
    assert a.log_path(sid).read_bytes() == log_before
    assert "not merged, left in place" in result.describe()
    (retried,) = merge_conflict_copies(impatient, dry_run=False)
    assert retried.error is None and not copy.exists()


def test_log_replaced_by_a_sync_tool_during_the_merge_is_merged_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync tool does not take our lock: what it brings in mid-merge must not be overwritten."""
    from eventlog import _fs

    a, b, sid = _diverged(tmp_path)
    c_root = tmp_path / "c"
    clone(tmp_path / "a", c_root)
    c = open_store(c_root)
    continue_session(c, sid, "from the sync tool")
    _lay_copy(a, b, sid, SYNCTHING_COPY)
    arriving = c.log_path(sid).read_bytes()
    real_open = _fs.open
    replaced: list[bool] = []

    def open_then_sync_tool(path: Path, *args: int) -> int:
        fd = real_open(path, *args)
        if str(path).endswith(".tmp") and f".{sid}.jsonl." in str(path) and not replaced:
            # Between our read and our rename, the tool renames its version over the log.
            tmp = a.sessions_dir / f".syncthing.{sid}.jsonl.tmp"
            tmp.write_bytes(arriving)
            os.replace(tmp, a.log_path(sid))
            replaced.append(True)
        return fd

    monkeypatch.setattr(_fs, "open", open_then_sync_tool)
    (result,) = merge_conflict_copies(a, dry_run=False)
    assert replaced and result.written
    assert raw_event_ids(a.log_path(sid)) == raw_event_ids(c.log_path(sid)) | raw_event_ids(b.log_path(sid))
    assert raw_event_ids(c.log_path(sid)) - raw_event_ids(b.log_path(sid)), "the tool brought events of its own"


def test_symlinked_copy_is_refused_not_followed(tmp_path: Path) -> None:
    from sessions import DamagedLogWarning

    a, b, sid = _diverged(tmp_path)
    outside = tmp_path / "outside.jsonl"
    outside.write_bytes(b.log_path(sid).read_bytes())
    link = a.sessions_dir / SYNCTHING_COPY.format(sid=sid)
    link.symlink_to(outside)
    with pytest.warns(DamagedLogWarning, match="symlink"):
        assert set(all_event_ids(a, sid)) == raw_event_ids(a.log_path(sid))
    (result,) = merge_conflict_copies(a, dry_run=False)
    assert result.error is not None and link.is_symlink() and outside.exists()


def test_symlinked_trash_is_refused_before_anything_changes(tmp_path: Path) -> None:
    a, b, sid = _diverged(tmp_path)
    copy = _lay_copy(a, b, sid, SYNCTHING_COPY)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    a.trash_dir.symlink_to(elsewhere)
    log_before = a.log_path(sid).read_bytes()
    (result,) = merge_conflict_copies(a, dry_run=False)
    assert result.error is not None and "trash" in result.error
    assert copy.exists() and a.log_path(sid).read_bytes() == log_before
    assert list(elsewhere.iterdir()) == []


def test_verify_reports_conflict_copies_without_calling_them_damage(tmp_path: Path) -> None:
    a, b, sid = _diverged(tmp_path)
    assert [f for f in a.verify(sid).findings if f.kind == "conflict_copy"] == []
    copy = _lay_copy(a, b, sid, SYNCTHING_COPY)
    report = a.verify(sid)
    (finding,) = [f for f in report.findings if f.kind == "conflict_copy"]
    assert copy.name in finding.detail and "sessions doctor" in finding.detail
    assert report.ok
    merge_conflict_copies(a, dry_run=False)
    assert [f for f in a.verify(sid).findings if f.kind == "conflict_copy"] == []


def test_damage_in_the_log_itself_is_reported_with_its_offset_when_a_copy_is_present(tmp_path: Path) -> None:
    from sessions import DamagedLogWarning

    a, b, sid = _diverged(tmp_path)
    log = a.log_path(sid)
    good = log.read_bytes()
    with open(log, "ab") as f:
        f.write(b"{broken\n")
    _lay_copy(a, b, sid, SYNCTHING_COPY)
    with pytest.warns(DamagedLogWarning) as caught:
        events = a.load_events(sid)
    assert [str(w.message) for w in caught if "conflict copy" in str(w.message)] == []
    (message,) = [str(w.message) for w in caught]
    assert str(log) in message and f"[{len(good)}]" in message
    assert len(events) == 8
