"""A store on a read-only file system (a backup, a mounted snapshot) opens and reads; writes fail cleanly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sessions import LocalSessionService, SessionManager, SessionWriteError, Text, UserMessage
from tests.cli.conftest import read_only_view


def test_a_read_only_store_without_its_disposable_folders_opens_and_reads(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with LocalSessionService.open(root) as store:
        manager = SessionManager.create_new(store, "/backup")
        manager.persist_events([UserMessage("kept"), Text("safe")])
        manager.set_metadata("k", [1])
    (root / "index.jsonl").unlink()
    shutil.rmtree(root / "locks")
    before = sorted(p.name for p in root.rglob("*"))
    with read_only_view(tmp_path) as view:
        store = LocalSessionService.open(view / "store")
        (listed,) = store.list_sessions()
        assert listed.id == manager.session_id and listed.event_count == 2
        stored = store.get_session(manager.session_id)
        assert stored is not None
        assert SessionManager.resume(store, stored).events == [UserMessage("kept"), Text("safe")]
        assert store.metadata(manager.session_id) == {"k": [1]}
        assert store.verify(manager.session_id).ok
        with pytest.raises(SessionWriteError, match="read-only file system"):
            store.archive(manager.session_id)
    assert sorted(p.name for p in root.rglob("*")) == before  # nothing was written
