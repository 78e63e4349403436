"""``sessions doctor`` (the real console script) merges conflict copies first, dry run changes nothing."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SessionsCLI
from tests.support.sync_helpers import SYNCTHING_COPY, all_event_ids, clone, continue_session, new_session, open_store


def test_doctor_merges_conflict_copies(sessions_cli: SessionsCLI, tmp_path: Path) -> None:
    store = sessions_cli.store
    a = open_store(store)
    sid = new_session(a, "/proj", "one")
    clone(store, tmp_path / "other")
    b = open_store(tmp_path / "other")
    continue_session(a, sid, "a2")
    continue_session(b, sid, "b2")
    copy = a.sessions_dir / SYNCTHING_COPY.format(sid=sid)
    copy.write_bytes(b.log_path(sid).read_bytes())
    log_before = a.log_path(sid).read_bytes()
    union = all_event_ids(a, sid)

    dry = sessions_cli("doctor", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would merge 1 conflict copy (2 new event(s), 2 branches kept" in " ".join(dry.stdout.split())
    assert copy.exists() and a.log_path(sid).read_bytes() == log_before

    fixed = sessions_cli("doctor")
    assert fixed.returncode == 0, fixed.stderr
    assert "merged 1 conflict copy (2 new event(s), 2 branches kept" in " ".join(fixed.stdout.split())
    assert not copy.exists()
    assert (a.trash_dir / copy.name).read_bytes() == b.log_path(sid).read_bytes()
    assert all_event_ids(open_store(store), sid) == union
    assert sessions_cli("verify", "--all").returncode == 0

    again = sessions_cli("doctor")
    assert "merge conflict copies:\n  nothing to do" in again.stdout
