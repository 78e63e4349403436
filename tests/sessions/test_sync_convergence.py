"""Two machines doing random work with random partial syncs converge, with every event kept once."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessions import LocalSessionService
from sessions.conflicts import merge_conflict_copies
from tests.support.sync_helpers import all_event_ids, continue_session, new_session, open_store, raw_event_ids, view

_OPS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),
        st.sampled_from(["new", "turn", "turn", "turn", "meta", "archive", "sync", "sync"]),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=16,
)


def _sync(src: LocalSessionService, dst: LocalSessionService, n: int) -> None:
    """What a sync tool does when both sides changed: the other side's version lands as a conflict copy."""
    for log in map(src.log_path, src.session_ids()):
        mine = dst.sessions_dir / log.name
        if not mine.exists():
            shutil.copy2(log, mine)
        elif mine.read_bytes() != log.read_bytes():
            copy = dst.sessions_dir / f"{log.stem}.sync-conflict-20261125-0000{n:02d}-ABCDEF7.jsonl"
            copy.write_bytes(log.read_bytes())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_OPS)
def test_random_work_and_syncs_converge(ops: list[tuple[str, str, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stores = {name: open_store(Path(tmp) / name) for name in "ab"}
        seen: set[str] = set()  # every event id any machine ever wrote
        for step, (machine, op, pick) in enumerate(ops):
            store = stores[machine]
            sessions = store.session_ids()
            if op == "new" or (op != "sync" and not sessions):
                new_session(store, "/proj", f"{machine}{step}")
            elif op == "turn":
                continue_session(store, sessions[pick % len(sessions)], f"{machine}{step}")
            elif op == "meta":
                store.set_metadata(sessions[pick % len(sessions)], "k", f"{machine}{step}")
            elif op == "archive":
                store.archive(sessions[pick % len(sessions)])
            else:
                other = stores["b" if machine == "a" else "a"]
                _sync(other, store, step)
            for s in stores.values():
                seen |= raw_event_ids(*s.sessions_dir.glob("*.jsonl"))  # logs and copies

        _sync(stores["a"], stores["b"], 98)
        merge_conflict_copies(stores["b"], dry_run=False)
        _sync(stores["b"], stores["a"], 99)
        merge_conflict_copies(stores["a"], dry_run=False)

        a, b = stores["a"], stores["b"]
        assert view(a) == view(b)
        assert a.session_ids() == b.session_ids()
        for sid in a.session_ids():
            assert a.log_path(sid).read_bytes() == b.log_path(sid).read_bytes()
        held = [i for s in a.list_sessions(include_archived=True) for i in all_event_ids(a, s.id)]
        assert sorted(held) == sorted(seen), "an event was lost or appears twice"
