"""Concurrent writers: one chain, no lost or duplicated events, clear refusals."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import filelock
import msgspec
import pytest

from eventlog import new_id, read_log
from sessions import (
    LocalSessionService,
    SessionBusy,
    SessionConflict,
    SessionManager,
    SessionsError,
    Text,
    UserMessage,
)

# Appends `count` events to one session, retrying when another writer got there
# first; prints how many refusals it saw.
WRITER = textwrap.dedent(
    """
    import sys
    from eventlog import new_id
    from sessions import LocalSessionService, SessionBusy, SessionConflict
    root, session_id, count, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    service = LocalSessionService.open(root, lock_timeout=10)
    refused = 0
    done = 0
    while done < count:
        head = service.get_session(session_id).head_id
        try:
            service.append_event(session_id, new_id(), head, tag, "text", '{"content": "%s-%d"}' % (tag, done))
        except (SessionConflict, SessionBusy):
            refused += 1
            continue
        done += 1
    print(refused)
    """
)


def assert_one_clean_chain(path: Path, expected: set[str]) -> None:
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    for line in raw.splitlines():
        msgspec.json.decode(line)  # no partial or interleaved line
    read = read_log(path)
    assert not read.damaged and read.torn is None
    events = [r for r in read.records if r.k == "event"]
    ids = [r.id for r in events]
    assert len(ids) == len(set(ids)), "duplicated event"
    parents = [r.parent for r in events]
    assert parents == [None, *ids[:-1]], "the log is not one chain in file order"
    contents = {msgspec.json.decode(r.data)["content"] for r in events}
    assert contents == expected


def test_processes_appending_to_one_session(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path)
    sid = new_id()
    service.create_session(sid, "/p", None)
    writers, count = 4, 40
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), sid, str(count), f"w{n}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(writers)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * writers
    assert all(out.strip().isdigit() for out in outputs)
    expected = {f"w{n}-{i}" for n in range(writers) for i in range(count)}
    assert_one_clean_chain(service.log_path(sid), expected)
    stored = service.get_session(sid)
    assert stored is not None and stored.event_count == writers * count


def test_threads_sharing_one_service(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path, lock_timeout=10)
    shared = new_id()
    service.create_session(shared, None, None)
    errors: list[BaseException] = []

    def shared_writer(tag: str) -> None:
        try:
            done = 0
            while done < 25:
                stored = service.get_session(shared)
                assert stored is not None
                try:
                    service.append_event(shared, new_id(), stored.head_id, tag, "text", f'{{"content":"{tag}-{done}"}}')
                except SessionConflict:
                    continue
                done += 1
        except BaseException as exc:
            errors.append(exc)

    def own_session_writer(n: int) -> None:
        try:
            manager = SessionManager.create_new(service, f"/dir{n}", None)
            events: list[UserMessage | Text] = []
            for i in range(20):
                events.append(UserMessage(f"{n}-{i}"))
                manager.persist_events(events)
            assert len(service.load_events(manager.session_id)) == 20
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=shared_writer, args=(f"t{n}",)) for n in range(4)]
    threads += [threading.Thread(target=own_session_writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert_one_clean_chain(service.log_path(shared), {f"t{n}-{i}" for n in range(4) for i in range(25)})
    assert len(service.list_sessions()) == 5


def test_second_manager_on_the_same_session_is_refused_with_nothing_written(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path)
    original = SessionManager.create_new(service, "/p", None)
    original.persist_events([UserMessage("start")])
    stored = service.get_session(original.session_id)
    assert stored is not None
    first = SessionManager.resume(LocalSessionService.open(tmp_path), stored)
    second = SessionManager.resume(LocalSessionService.open(tmp_path), stored)
    first.manager.persist_events([*first.events, Text("from the first")])
    size = service.log_path(stored.id).stat().st_size
    with pytest.raises(SessionConflict, match="resume the session again") as excinfo:
        second.manager.persist_events([*second.events, Text("from the second")])
    assert isinstance(excinfo.value, SessionsError)
    assert service.log_path(stored.id).stat().st_size == size
    # Resuming again shows the other writer's events, and continuing works.
    again = SessionManager.resume(service, stored)
    again.manager.persist_events([*again.events, Text("from the second, retried")])
    assert [e.event_type for e in service.load_events(stored.id)] == ["user_message", "text", "text"]


def test_a_held_lock_gives_session_busy_with_nothing_written(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path, lock_timeout=0.2)
    manager = SessionManager.create_new(service, "/p", None)
    manager.persist_events([UserMessage("a")])
    lock_path = service.locks_dir / f"{manager.session_id}.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, filelock\n"
            "with filelock.FileLock(sys.argv[1]):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(30)\n",
            str(lock_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        size = service.log_path(manager.session_id).stat().st_size
        started = time.monotonic()
        with pytest.raises(SessionBusy) as excinfo:
            manager.persist_events([UserMessage("a"), Text("b")])
        assert isinstance(excinfo.value, TimeoutError)
        assert time.monotonic() - started < 10
        assert service.log_path(manager.session_id).stat().st_size == size
    finally:
        holder.kill()
        holder.communicate()
    manager.persist_events([UserMessage("a"), Text("b")])  # the manager is still usable
    assert len(service.load_events(manager.session_id)) == 2
    assert not filelock.FileLock(lock_path, timeout=0).is_locked
