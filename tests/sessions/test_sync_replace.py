"""A log that a sync tool keeps replacing (write a temporary file, rename) is never half-read as damage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sessions import LocalSessionService
from tests.support.sync_helpers import clone, continue_session, new_session, open_store

ROOT = Path(__file__).parent.parent.parent


def test_reader_sees_whole_versions_while_the_log_is_replaced(tmp_path: Path) -> None:
    a = open_store(tmp_path / "a")
    sid = new_session(a, "/proj", "one", "two")
    clone(tmp_path / "a", tmp_path / "b")
    b = open_store(tmp_path / "b")
    versions = [a.log_path(sid).read_bytes()]
    continue_session(a, sid, "a3", "a4")  # grows: the next version extends this one
    versions.append(a.log_path(sid).read_bytes())
    continue_session(b, sid, "b3", "b4", "b5")  # diverged: not an extension of the one before
    versions.append(b.log_path(sid).read_bytes())
    expected = {}
    for i, data in enumerate(versions):
        path = tmp_path / f"v{i}.jsonl"
        path.write_bytes(data)
        one = LocalSessionService.open(tmp_path / f"only{i}", durability="flush")
        one.log_path(sid).write_bytes(data)
        stored = one.get_session(sid)
        assert stored is not None
        expected[stored.head_id] = ([e.id for e in one.load_events(sid)], stored.event_count)
    assert len(expected) == 3

    reader = open_store(tmp_path / "reader")
    reader.log_path(sid).write_bytes(versions[0])
    command = [
        sys.executable,
        "-m",
        "tests.support.sync_replacer_worker",
        str(reader.log_path(sid)),
        "3",
        *(str(tmp_path / f"v{i}.jsonl") for i in range(3)),
    ]
    reads = 0
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as worker:
        while worker.poll() is None:
            # pytest turns a DamagedLogWarning into an error: a half-read version fails here.
            stored = reader.get_session(sid)
            assert stored is not None and stored.head_id in expected
            assert stored.event_count == expected[stored.head_id][1]
            events = [e.id for e in reader.load_events(sid)]
            assert events in [ids for ids, _ in expected.values()]
            (listed,) = reader.list_sessions()
            assert listed.head_id in expected
            reads += 1
        replaced = int(worker.communicate(timeout=30)[0])
    assert worker.returncode == 0
    assert replaced > 10 and reads > 10


def test_replaced_log_reusing_the_inode_is_not_taken_for_growth(tmp_path: Path) -> None:
    """ext4 hands a freed inode to the next new file, so "write temp, rename" often gives the log
    its old inode back. A version that is longer but not an extension must be read afresh."""
    a = open_store(tmp_path / "a")
    sid = new_session(a, "/proj", "one")
    clone(tmp_path / "a", tmp_path / "b")
    b = open_store(tmp_path / "b")
    b.set_metadata(sid, "k", "from b, written first")
    a.set_metadata(sid, "k", "from a")
    reader = open_store(tmp_path / "reader")
    log = reader.log_path(sid)
    log.write_bytes(a.log_path(sid).read_bytes())
    assert reader.get_metadata(sid, "k") == "from a"
    # Rewrite the same inode with B's version, as inode reuse after a rename makes it look.
    with open(log, "r+b") as f:
        f.write(b.log_path(sid).read_bytes())
        f.truncate()
    assert reader.get_metadata(sid, "k") == "from b, written first"
