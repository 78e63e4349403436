"""Two store roots kept in step with real rsync: ``--backup`` keeps the replaced log as ``<id>.jsonl~``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from eventlog import verify_log
from sessions.conflicts import conflict_copies, merge_conflict_copies
from tests.support.sync_helpers import (
    all_event_ids,
    clone,
    continue_session,
    new_session,
    open_store,
    raw_event_ids,
    view,
)

pytestmark = pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed")


def _rsync(src: Path, dst: Path) -> None:
    """The documented recipe: only sessions/, compare contents, keep what it replaces as a conflict copy.

    ``--checksum`` because two diverged logs can have the same size and mtime
    second, and rsync's quick check would then skip them.
    """
    subprocess.run(
        ["rsync", "-a", "--checksum", "--backup", f"{src}/sessions/", f"{dst}/sessions/"],
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_rsync_both_ways_with_backup_converges(tmp_path: Path) -> None:
    a_root, b_root = tmp_path / "a", tmp_path / "b"
    a = open_store(a_root)
    sid = new_session(a, "/proj", "one", "two")
    same_size = new_session(a, "/proj", "s")
    clone(a_root, b_root)
    b = open_store(b_root)
    continue_session(a, same_size, "x1")  # same length on both sides, likely the same mtime second
    continue_session(b, same_size, "y1")
    continue_session(a, sid, "a3")
    only_a = new_session(a, "/proj", "a only")
    continue_session(b, sid, "b3", "b4")
    only_b = new_session(b, "/proj", "b only")
    a.set_metadata(sid, "k", "from a")
    expected = raw_event_ids(*(a_root / "sessions").glob("*.jsonl"), *(b_root / "sessions").glob("*.jsonl"))

    _rsync(a_root, b_root)  # B gets A's logs; its own diverged log is kept as <id>.jsonl~
    assert sorted(conflict_copies(b.sessions_dir)) == sorted([sid, same_size])
    merged = merge_conflict_copies(b, dry_run=False)
    assert [m.forked for m in merged] == [True, True] and not [m.error for m in merged if m.error]
    _rsync(b_root, a_root)  # A gets the merged log; its old one (a subset) becomes a copy
    merge_conflict_copies(a, dry_run=False)

    for store in (a, b):
        assert conflict_copies(store.sessions_dir) == {}
        assert {s.id for s in store.list_sessions()} == {sid, same_size, only_a, only_b}
        assert sorted(expected) == sorted(i for s in (sid, same_size, only_a, only_b) for i in all_event_ids(store, s))
    assert view(a) == view(b)
    for name in (f"{sid}.jsonl", f"{same_size}.jsonl", f"{only_a}.jsonl", f"{only_b}.jsonl"):
        assert (a_root / "sessions" / name).read_bytes() == (b_root / "sessions" / name).read_bytes()
    report = verify_log(a.log_path(sid))
    assert report.ok and not [f for f in report.findings if f.kind == "duplicate"]
    assert a.get_metadata(sid, "k") == "from a"

    # A second round with nothing new changes nothing and leaves no copies behind.
    _rsync(a_root, b_root)
    _rsync(b_root, a_root)
    assert conflict_copies(a.sessions_dir) == {} == conflict_copies(b.sessions_dir)


def test_rsync_without_backup_would_lose_events(tmp_path: Path) -> None:
    """Why the recipe says --backup: a plain rsync replaces the other side's log."""
    a_root, b_root = tmp_path / "a", tmp_path / "b"
    a = open_store(a_root)
    sid = new_session(a, "/proj", "one")
    clone(a_root, b_root)
    b = open_store(b_root)
    continue_session(a, sid, "a2")
    continue_session(b, sid, "b2")
    b_only = raw_event_ids(b.log_path(sid)) - raw_event_ids(a.log_path(sid))
    subprocess.run(["rsync", "-a", "--checksum", f"{a_root}/sessions/", f"{b_root}/sessions/"], check=True, timeout=60)
    assert not b_only & set(all_event_ids(b, sid))
