"""replace_events: a session's events replaced in one step, the old log in the trash, no write lost."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import msgspec
import pytest

from sessions import (
    LocalSessionService,
    SessionConflict,
    SessionManager,
    SessionNotFound,
    SessionWriteError,
    StoredEvent,
    UserMessage,
)
from sessions.rewrite import REPLACED


def _store(root: Path) -> LocalSessionService:
    return LocalSessionService.open(root, durability="flush")


def _texts(events: list[StoredEvent]) -> list[str]:
    return [msgspec.json.decode(e.event_data)["content"] for e in events]


def _session(store: LocalSessionService, n: int) -> str:
    manager = SessionManager.create_new(store, "/p", labels={"app": "x"})
    manager.persist_events([UserMessage(str(i)) for i in range(n)])
    manager.set_metadata("k", {"v": 1})
    return manager.session_id


def _relinked(events: list[StoredEvent]) -> list[StoredEvent]:
    """The events as one chain again (what a pruning adapter hands over)."""
    out: list[StoredEvent] = []
    for event in events:
        out.append(msgspec.structs.replace(event, parent_id=out[-1].id if out else None))
    return out


def test_events_are_replaced_and_the_old_log_kept(tmp_path: Path) -> None:
    store = _store(tmp_path)
    sid = _session(store, 10)
    old_bytes = store.log_path(sid).read_bytes()
    events = store.load_events(sid)
    stored = store.replace_events(sid, _relinked(events[5:]))
    assert stored.event_count == 5 and stored.labels == {"app": "x"}
    fresh = _store(tmp_path)
    assert _texts(fresh.load_events(sid)) == [str(i) for i in range(5, 10)]
    assert fresh.get_metadata(sid, "k") == {"v": 1}
    assert fresh.verify(sid).ok
    (kept,) = (tmp_path / "trash" / REPLACED).iterdir()
    assert kept.read_bytes() == old_bytes
    # The session carries on.
    resumed = SessionManager.resume(fresh, stored)
    resumed.manager.persist_events([*resumed.events, UserMessage("after")])
    assert _texts(fresh.load_events(sid))[-1] == "after"


def test_a_bad_replacement_changes_nothing(tmp_path: Path) -> None:
    store = _store(tmp_path)
    sid = _session(store, 3)
    before = store.log_path(sid).read_bytes()
    events = store.load_events(sid)
    with pytest.raises(ValueError, match="earlier event"):
        store.replace_events(sid, [events[2], events[1]])
    with pytest.raises(SessionNotFound):
        store.replace_events("no-such-session", [])
    assert store.log_path(sid).read_bytes() == before
    assert not (tmp_path / "trash" / REPLACED).exists()


def test_readers_never_see_an_empty_session_while_it_is_replaced(tmp_path: Path) -> None:
    store = _store(tmp_path)
    sid = _session(store, 20)
    events = store.load_events(sid)
    seen: list[int] = []
    stop = threading.Event()

    def read() -> None:
        reader = _store(tmp_path)
        while not stop.is_set():
            seen.append(len(reader.load_events(sid)))

    thread = threading.Thread(target=read)
    thread.start()
    for n in range(30):
        store.replace_events(sid, _relinked(events[n % 10 :]))
    stop.set()
    thread.join()
    assert seen and min(seen) >= 10


def test_a_writer_from_before_the_replacement_appends_or_conflicts_never_loses(tmp_path: Path) -> None:
    store = _store(tmp_path)
    sid = _session(store, 4)
    stored = store.get_session(sid)
    assert stored is not None
    # Another process resumed the session before the replacement, and appends after it.
    script = textwrap.dedent(
        f"""
        import sys
        from sessions import LocalSessionService, SessionManager, SessionConflict, UserMessage
        store = LocalSessionService.open({str(tmp_path)!r}, durability="flush")
        resumed = SessionManager.resume(store, store.get_session({sid!r}))
        print("ready", flush=True)
        sys.stdin.readline()
        try:
            resumed.manager.persist_events([*resumed.events, UserMessage("late")])
        except SessionConflict:
            print("conflict", flush=True)
        else:
            print("written", flush=True)
        """
    )
    command = [sys.executable, "-c", script]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as writer:
        assert writer.stdout is not None and writer.stdin is not None
        assert writer.stdout.readline().strip() == "ready"
        events = store.load_events(sid)
        store.replace_events(sid, _relinked(events[2:]))
        writer.stdin.write("\n")
        writer.stdin.flush()
        outcome = writer.stdout.readline().strip()
        writer.wait(30)
    texts = _texts(_store(tmp_path).load_events(sid))
    # Its head (event 3) is still the head of the new log, so the append lands there; either way nothing is lost.
    assert (outcome, texts) == ("written", ["2", "3", "late"])

    # With the head gone, the same append is refused, and the session is unchanged.
    resumed = SessionManager.resume(store, store.get_session(sid))  # type: ignore[arg-type]
    store.replace_events(sid, _relinked(store.load_events(sid)[:1]))
    with pytest.raises(SessionConflict):
        resumed.manager.persist_events([*resumed.events, UserMessage("late again")])
    assert _texts(store.load_events(sid)) == ["2"]


def test_conflict_copies_are_merged_before_a_replacement(tmp_path: Path) -> None:
    store = _store(tmp_path)
    sid = _session(store, 3)
    log = store.log_path(sid)
    copy = log.with_name(f"{sid}.sync-conflict-20260101-000000-ABCDEFG.jsonl")
    copy.write_bytes(log.read_bytes())
    store.replace_events(sid, _relinked(store.load_events(sid)[2:]))
    assert not copy.exists() and store.copies_of(sid) == []
    manager = SessionManager.resume(store, store.get_session(sid))  # type: ignore[arg-type]
    manager.manager.persist_events([*manager.events, UserMessage("next")])
    assert _texts(store.load_events(sid)) == ["2", "next"]  # nothing dropped came back


def test_replaced_logs_are_purged_with_the_rest_of_the_trash(tmp_path: Path) -> None:
    store = _store(tmp_path)
    sid = _session(store, 3)
    store.replace_events(sid, _relinked(store.load_events(sid)[1:]))
    assert store.purge_trash(3600) == 0
    assert store.purge_trash(-1) == 1
    assert not any((tmp_path / "trash" / REPLACED).iterdir())


def test_pop_undoes_only_this_writers_turn(tmp_path: Path) -> None:
    """A manager pops its own last event; if another writer appended since, pop refuses (nothing rewound)."""
    store = _store(tmp_path)
    sid = _session(store, 3)
    mine = SessionManager.resume(store, store.get_session(sid))  # type: ignore[arg-type]
    other = SessionManager.resume(_store(tmp_path), store.get_session(sid))  # type: ignore[arg-type]
    other.manager.persist_events([*other.events, UserMessage("theirs")])
    with pytest.raises(SessionConflict):
        mine.manager.pop()
    assert _texts(store.load_events(sid))[-1] == "theirs"
    with pytest.raises(SessionConflict):
        store.rewind(sid, store.load_events(sid)[0].id, expected_head="somebody-else")
    assert other.manager.pop() == [UserMessage("0"), UserMessage("1"), UserMessage("2")]
    assert _texts(store.load_events(sid)) == ["0", "1", "2"]


def test_a_failure_after_the_rename_keeps_the_old_log_in_the_trash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Syncing the folder fails after the new log is in place: the old events must still be in the trash."""
    import eventlog.durability

    store = LocalSessionService.open(tmp_path)  # fsync: the folder is synced after the rename
    sid = _session(store, 3)
    old = store.log_path(sid).read_bytes()
    real = eventlog.durability.sync_dir

    def failing(path: Path) -> None:
        if Path(path).name == "sessions":
            raise OSError(5, "Input/output error")
        real(path)

    monkeypatch.setattr(eventlog.durability, "sync_dir", failing)
    with pytest.raises(SessionWriteError, match="kept whole in trash/replaced/"):
        store.replace_events(sid, _relinked(store.load_events(sid)[2:]))
    (kept,) = (tmp_path / "trash" / REPLACED).iterdir()
    assert kept.read_bytes() == old


def test_an_event_id_twice_in_a_tree_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    sid = _session(store, 2)
    first, second = store.load_events(sid)
    again = msgspec.structs.replace(second, parent_id=first.id)
    with pytest.raises(ValueError, match="twice"):
        store.replace_events(sid, [first, second, again])
    copied = [msgspec.structs.replace(e, session_id="copy") for e in (first, second, again)]
    with pytest.raises(ValueError, match="twice"):
        store.create_session("copy", None, None, events=copied)
    assert store.get_session("copy") is None
