"""Suite 3: many writer processes on one session and on one store, with readers and reindexing alongside.

Afterwards: counts exact, no duplicates, no partial lines, the chain valid,
and every refused write was the documented error with nothing written (each
``TAG:i`` appears exactly once although refused writes were retried).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import msgspec
import pytest

import eventlog._fs
from eventlog import new_id, read_log
from sessions import (
    ConversationEvent,
    LocalSessionService,
    SessionBusy,
    SessionConflict,
    SessionManager,
    UnknownEvent,
    UserMessage,
)
from tests.support._support import assert_chain_valid, event_contents, run_script

SESSIONS_CLI = str(Path(sys.executable).parent / "sessions")


def check_session(root: Path, session_id: str, tags: dict[str, int]) -> None:
    """The session holds exactly ``TAG:0 .. TAG:n-1`` for each tag, each once, each tag's in order."""
    contents = event_contents(root, session_id)
    assert len(contents) == sum(tags.values())
    assert len(set(contents)) == len(contents), "an event was written twice"
    for tag, count in tags.items():
        assert [c for c in contents if c.startswith(f"{tag}:")] == [f"{tag}:{i}" for i in range(count)]
    path = root / "sessions" / f"{session_id}.jsonl"
    assert read_log(path).torn is None
    assert_chain_valid(path)
    stored = LocalSessionService.open(root).get_session(session_id)
    assert stored is not None and stored.event_count == len(contents)


def run_processes(
    root: Path, *, workers: int, count: int, shared: bool, durability: str, lock_timeout: float = 30
) -> dict[str, object]:
    service = LocalSessionService.open(root, durability=durability)
    session_id = new_id()
    if shared:
        service.create_session(session_id, "/shared", None)
    stop = root.parent / f"stop-{session_id}"
    reader = run_script("concurrency_worker.py", "reader", str(root), str(stop))
    go = root.parent / f"go-{session_id}"
    procs = []
    for w in range(workers):
        tag = f"w{w}"
        args = ["shared", str(root), session_id] if shared else ["own", str(root)]
        env = {"RELIABILITY_LOCK_TIMEOUT": str(lock_timeout)}
        procs.append((tag, run_script("concurrency_worker.py", *args, tag, str(count), durability, str(go), env=env)))
    for _, proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
    go.touch()
    started = time.monotonic()
    # Meanwhile the real console script rebuilds the index, again and again.
    reindexes = 0
    while any(proc.poll() is None for _, proc in procs):
        rebuilt = subprocess.run(
            [SESSIONS_CLI, "--store", str(root), "reindex"], capture_output=True, text=True, timeout=120, check=False
        )
        assert rebuilt.returncode == 0, rebuilt.stderr
        reindexes += 1
    acked: Counter[str] = Counter()
    sessions: dict[str, str] = {}
    refused: Counter[str] = Counter()
    for tag, proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        lines = out.splitlines()
        acked[tag] = sum(1 for line in lines if line.startswith("ack "))
        done = lines[-1].split()
        assert done[0] == "done", lines[-1]
        sessions[tag] = done[1]
        for item in done[2:]:
            name, _, value = item.partition("=")
            refused[name] += int(value)
    seconds = time.monotonic() - started
    stop.touch()
    out, err = reader.communicate(timeout=120)
    assert reader.returncode == 0, err
    assert "bad" not in out, out
    assert all(n == count for n in acked.values()) and len(acked) == workers
    if shared:
        assert set(sessions.values()) == {session_id}
        check_session(root, session_id, dict(acked))
    else:
        assert len(set(sessions.values())) == workers
        for tag, sid in sessions.items():
            check_session(root, sid, {tag: count})
        listed = LocalSessionService.open(root).list_sessions()
        assert sorted(s.id for s in listed) == sorted(sessions.values())
        assert all(s.event_count == count for s in listed)
    return {
        "persists": workers * count,
        "seconds": round(seconds, 1),
        "conflicts": refused["conflicts"],
        "busy": refused["busy"],
        "reader": out.strip(),
        "cli reindexes": reindexes,
    }


@pytest.mark.parametrize("shared", [True, False], ids=["one-session", "own-sessions"])
def test_processes_quick(tmp_path: Path, shared: bool) -> None:
    run_processes(tmp_path / "store", workers=8, count=200, shared=shared, durability="flush")


def test_busy_writers_are_refused_with_nothing_written(tmp_path: Path) -> None:
    """With no patience for the lock, writers get SessionBusy often; each refusal wrote nothing."""
    figures = run_processes(
        tmp_path / "store", workers=8, count=60, shared=True, durability="fsync", lock_timeout=0.0005
    )
    assert isinstance(figures["busy"], int) and figures["busy"] > 0, figures


@pytest.mark.stress
@pytest.mark.parametrize("durability", ["fsync", "flush"])
@pytest.mark.parametrize("shared", [True, False], ids=["one-session", "own-sessions"])
def test_processes_stress(tmp_path: Path, shared: bool, durability: str) -> None:
    count = int(os.environ.get("RELIABILITY_PERSISTS", "1000"))
    figures = run_processes(tmp_path / "store", workers=8, count=count, shared=shared, durability=durability)
    print(f"\nconcurrency[{'shared' if shared else 'own'}, {durability}]: {figures}")


def thread_writers(root: Path, *, threads: int, count: int, shared: bool) -> Counter[str]:
    """Threads of one process, sharing one service, each persisting ``count`` events."""
    service = LocalSessionService.open(root, lock_timeout=30)
    session_id = new_id()
    if shared:
        service.create_session(session_id, "/shared", None)
    refused: Counter[str] = Counter()
    errors: list[BaseException] = []
    sessions: dict[str, str] = {}

    def writer(tag: str) -> None:
        try:
            if shared:
                stored = service.get_session(session_id)
                assert stored is not None
                resumed = SessionManager.resume(service, stored)
                manager, events = resumed.manager, list(resumed.events)
            else:
                manager = SessionManager.create_new(service, f"/own/{tag}", None)
                events = []
            i = 0
            while i < count:
                events.append(UserMessage(f"{tag}:{i}"))
                try:
                    manager.persist_events(events)
                except (SessionConflict, SessionBusy) as exc:
                    refused[type(exc).__name__] += 1
                    stored = service.get_session(manager.session_id)
                    assert stored is not None
                    resumed = SessionManager.resume(service, stored)
                    manager, events = resumed.manager, list(resumed.events)
                    continue
                i += 1
            sessions[tag] = manager.session_id
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=writer, args=(f"t{n}",)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for _ in range(5):
        service.list_sessions()
        service.find_resumable("/shared", None, 60)
    for thread in pool:
        thread.join()
    assert not errors, errors
    service.close()
    if shared:
        check_session(root, session_id, {f"t{n}": count for n in range(threads)})
    else:
        for tag, sid in sessions.items():
            check_session(root, sid, {tag: count})
    return refused


@pytest.mark.parametrize("shared", [True, False], ids=["one-session", "own-sessions"])
def test_threads_share_one_service(tmp_path: Path, shared: bool) -> None:
    thread_writers(tmp_path, threads=8, count=25, shared=shared)


@pytest.mark.stress
@pytest.mark.parametrize("shared", [True, False], ids=["one-session", "own-sessions"])
def test_threads_stress(tmp_path: Path, shared: bool) -> None:
    refused = thread_writers(tmp_path, threads=8, count=200, shared=shared)
    print(f"\nthreads[{'shared' if shared else 'own'}]: 1600 persists, refused {dict(refused)}")


def test_refused_write_leaves_nothing(tmp_path: Path) -> None:
    """A writer whose head moved gets SessionConflict and its batch is not in the log."""
    service = LocalSessionService.open(tmp_path)
    first = SessionManager.create_new(service, "/p", None)
    events: list[ConversationEvent | UnknownEvent] = [UserMessage("a:0")]
    first.persist_events(events)
    stored = service.get_session(first.session_id)
    assert stored is not None
    second = SessionManager.resume(service, stored)
    events.append(UserMessage("a:1"))
    first.persist_events(events)
    size = os.path.getsize(service.log_path(first.session_id))
    with pytest.raises(SessionConflict, match=first.session_id):
        second.manager.persist_events([*second.events, UserMessage("b:0")])
    assert os.path.getsize(service.log_path(first.session_id)) == size
    assert [msgspec.json.decode(e.event_data)["content"] for e in service.load_events(first.session_id)] == [
        "a:0",
        "a:1",
    ]


def test_index_deleted_by_another_process_right_after_a_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reindex (deleting index.jsonl) racing a save must not fail the call that saved.

    The race is narrow (between the write and the close after it), so the other
    process's delete is replayed at exactly that point.
    """
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/p", None)
    manager.persist_events([UserMessage("a:0")])
    real_write = eventlog._fs.write_all

    def write_then_reindex(fd: int, data: bytes | memoryview) -> None:
        real_write(fd, data)
        (tmp_path / "index.jsonl").unlink()

    monkeypatch.setattr(eventlog._fs, "write_all", write_then_reindex)
    service.close()
    monkeypatch.undo()
    again = LocalSessionService.open(tmp_path)
    assert [s.id for s in again.list_sessions()] == [manager.session_id]
    again.close()
    assert (tmp_path / "index.jsonl").exists()
