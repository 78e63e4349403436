"""Two machines doing random work (rewinds and compactions too) with random partial syncs converge.

Every event is kept once, all the copies of a session merged give the same
active branch whatever the order they are merged in, and after a full sync
(either machine merging first) ``load_events`` is the same on both machines.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlog import merge_logs
from sessions import Compaction, LocalSessionService, SessionManager, StoredEvent, UserMessage
from sessions.conflicts import merge_conflict_copies
from tests.support.sync_helpers import (
    all_event_ids,
    continue_session,
    new_session,
    open_store,
    raw_event_ids,
    view,
)

_OPS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),
        st.sampled_from(
            ["new", "turn", "turn", "turn", "meta", "archive", "rewind", "rewind", "compact", "merge", "sync", "sync"]
        ),
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


def _rewind(store: LocalSessionService, session_id: str, back: int) -> None:
    """Rewind ``back`` events from the head (0: a rewind to the head itself), or to the start if there are fewer."""
    branch = store.load_events(session_id)
    store.rewind(session_id, branch[len(branch) - 1 - back].id if back < len(branch) else None)


def _compact(store: LocalSessionService, session_id: str, label: str) -> None:
    """A compaction checkpoint and a turn after it, on the active branch."""
    stored = store.get_session(session_id)
    assert stored is not None
    resumed = SessionManager.resume(store, stored, from_compaction=True)
    resumed.manager.persist_events([*resumed.events, Compaction(summary=label, tokens_before=7), UserMessage(label)])


def _all_copies(stores: list[LocalSessionService]) -> dict[str, list[bytes]]:
    """Every copy of every session on any machine: logs and conflict copies, in a fixed order."""
    copies: dict[str, list[bytes]] = {}
    for store in stores:
        for session_id in store.session_ids():
            paths = [store.log_path(session_id), *store.copies_of(session_id)]
            copies.setdefault(session_id, []).extend(path.read_bytes() for path in paths)
    return copies


def _branches_of_union(copies: dict[str, list[bytes]], root: Path, main: int) -> dict[str, list[StoredEvent]]:
    """The active branch of each session read from a fresh store holding all its copies (copy ``main`` as the log).

    Read twice: with the copies beside the log (readers merge them), then after merging them in.
    """
    sessions = root / "sessions"
    sessions.mkdir(parents=True)
    for session_id, datas in copies.items():
        first = main % len(datas)
        for n, data in enumerate(datas[first:] + datas[:first]):
            name = f"{session_id}.jsonl" if n == 0 else f"{session_id}.sync-conflict-20261126-0000{n:02d}-ABCDEF7.jsonl"
            (sessions / name).write_bytes(data)
    store = open_store(root)
    before = {sid: store.load_events(sid) for sid in copies}
    merge_conflict_copies(store, dry_run=False)
    after = {sid: open_store(root).load_events(sid) for sid in copies}
    assert after == before
    return after


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_OPS, st.booleans())
def test_random_work_and_syncs_converge(ops: list[tuple[str, str, int]], a_merges_first: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stores = {name: open_store(Path(tmp) / name) for name in "ab"}
        seen: set[str] = set()  # every event id any machine ever wrote
        for step, (machine, op, pick) in enumerate(ops):
            store = stores[machine]
            sessions = store.session_ids()
            chosen = sessions[pick % len(sessions)] if sessions else ""
            if op == "new" or (op not in ("sync", "merge") and not sessions):
                new_session(store, "/proj", f"{machine}{step}")
            elif op == "turn":
                continue_session(store, chosen, f"{machine}{step}")
            elif op == "meta":
                store.set_metadata(chosen, "k", f"{machine}{step}")
            elif op == "archive":
                store.archive(chosen)
            elif op == "rewind":
                _rewind(store, chosen, pick)
            elif op == "compact":
                _compact(store, chosen, f"{machine}{step}")
            elif op == "merge":
                merge_conflict_copies(store, dry_run=False)  # a machine merging part way, at any point
            else:
                other = stores["b" if machine == "a" else "a"]
                _sync(other, store, step)
            for s in stores.values():
                seen |= raw_event_ids(*s.sessions_dir.glob("*.jsonl"))  # logs and copies

        # All the copies there are, merged in any order, give one file and one active branch.
        copies = _all_copies(list(stores.values()))
        for datas in copies.values():
            assert merge_logs(datas).data == merge_logs(list(reversed(datas))).data
        union = _branches_of_union(copies, Path(tmp) / "u0", 0)
        assert _branches_of_union(copies, Path(tmp) / "u1", -1) == union

        first, second = (stores["a"], stores["b"]) if a_merges_first else (stores["b"], stores["a"])
        _sync(second, first, 98)
        merge_conflict_copies(first, dry_run=False)
        _sync(first, second, 99)
        merge_conflict_copies(second, dry_run=False)

        a, b = stores["a"], stores["b"]
        assert view(a) == view(b)
        assert a.session_ids() == b.session_ids() == sorted(union)
        for sid in a.session_ids():
            assert a.log_path(sid).read_bytes() == b.log_path(sid).read_bytes()
            assert a.load_events(sid) == b.load_events(sid) == union[sid]
            for last, from_compaction in ((2, False), (None, True)):
                assert a.load_events(sid, last=last, from_compaction=from_compaction) == b.load_events(
                    sid, last=last, from_compaction=from_compaction
                )
        held = [i for s in a.list_sessions(include_archived=True) for i in all_event_ids(a, s.id)]
        assert sorted(held) == sorted(seen), "an event was lost or appears twice"


def test_event_count_agrees_across_machines_after_a_rewind_to_the_start(tmp_path: Path) -> None:
    a, b = open_store(tmp_path / "a"), open_store(tmp_path / "b")
    session_id = new_session(a, "/proj", "one")
    _rewind(a, session_id, 5)
    continue_session(a, session_id, "two")
    _sync(a, b, 0)
    counts = [store.get_session(session_id) for store in (a, b)]
    assert [s.event_count if s is not None else None for s in counts] == [4, 4]  # the log keeps 4 events
