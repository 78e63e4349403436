"""A merge killed (SIGKILL, a real subprocess) at every file-system call loses nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sessions.conflicts import conflict_copies, merge_conflict_copies
from tests.support.sync_helpers import (
    DROPBOX_COPY,
    SYNCTHING_COPY,
    all_event_ids,
    clone,
    continue_session,
    new_session,
    open_store,
    raw_event_ids,
)

ROOT = Path(__file__).parent.parent.parent


def _store_with_two_copies(tmp_path: Path) -> tuple[Path, list[str], set[str], set[bytes]]:
    a_root = tmp_path / "a"
    a = open_store(a_root)
    sids = [new_session(a, "/proj", "one"), new_session(a, "/proj", "other")]
    clone(a_root, tmp_path / "b")
    clone(a_root, tmp_path / "c")
    b, c = open_store(tmp_path / "b"), open_store(tmp_path / "c")
    for sid in sids:
        continue_session(a, sid, "a")
        continue_session(b, sid, "b", "b")
        continue_session(c, sid, "c")
        (a.sessions_dir / SYNCTHING_COPY.format(sid=sid)).write_bytes(b.log_path(sid).read_bytes())
        (a.sessions_dir / DROPBOX_COPY.format(sid=sid)).write_bytes(c.log_path(sid).read_bytes())
    expected = raw_event_ids(*(tmp_path / name / "sessions" / f"{sid}.jsonl" for name in "abc" for sid in sids))
    copies = {p.read_bytes() for p in a.sessions_dir.iterdir() if "conflict" in p.name}
    return a_root, sids, expected, copies


@pytest.mark.slow
def test_merge_killed_at_every_step_loses_nothing(tmp_path: Path) -> None:
    killed_at = []
    for n in range(1, 200):
        case = tmp_path / str(n)
        root, sids, expected, copies = _store_with_two_copies(case)
        worker = subprocess.run(
            [sys.executable, "-m", "tests.support.sync_crash_worker", str(root), str(n)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        finished = worker.returncode == 0
        assert finished or worker.returncode == -signal.SIGKILL, worker.stderr
        # Whatever point it died at, a reader sees every event (pytest errors on any damage warning).
        store = open_store(root)
        assert {i for sid in sids for i in all_event_ids(store, sid)} == expected, f"killed at call {n}"
        # Running the merge again finishes the job; the copies end up in the trash, intact.
        merge_conflict_copies(store, dry_run=False)
        assert conflict_copies(store.sessions_dir) == {}
        assert raw_event_ids(*(store.log_path(sid) for sid in sids)) == expected
        trashed = {p.read_bytes() for p in store.trash_dir.iterdir() if "conflict" in p.name}
        assert trashed == copies
        if finished:
            assert "done" in worker.stdout
            break
        killed_at.append(n)
    else:
        raise AssertionError("the merge never finished")
    # Two sessions, each: write + fsync the merged log, rename it, sync, move two copies, sync.
    assert len(killed_at) >= 10, killed_at
