"""Issue #14: hostile entries in the store, disposable files deleted under a running program, and
errors that are always the library's own (each test failed on the store before the rebuild)."""

from __future__ import annotations

import errno
import os
import resource
import shutil
import socket
import stat
import subprocess
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import eventlog._fs as fs
import eventlog.reader
from eventlog.merge import merge_into
from sessions import (
    DamagedLogWarning,
    LocalSessionService,
    SessionBusy,
    SessionManager,
    SessionReadError,
    SessionsError,
    SessionWriteError,
    Text,
    UserMessage,
)
from sessions.maintenance import doctor


def _store_with(root: Path, *directories: str) -> tuple[LocalSessionService, list[str]]:
    service = LocalSessionService.open(root)
    ids = []
    for directory in directories:
        manager = SessionManager.create_new(service, directory, None)
        manager.persist_events([UserMessage(f"in {directory}")])
        ids.append(manager.session_id)
    return service, ids


def _run_with_deadline(call: object, seconds: float = 20.0) -> object:
    """Run ``call`` in a thread; fail (instead of hanging the suite) if it does not return in time."""
    result: list[object] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(call())  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the call hung"
    if errors:
        raise errors[0]
    return result[0]


@pytest.mark.parametrize("kind", ["fifo", "socket", "folder"])
def test_a_non_regular_entry_named_like_a_log_is_skipped_with_a_warning(tmp_path: Path, kind: str) -> None:
    service, (good,) = _store_with(tmp_path, "/p")
    service.close()
    hostile = tmp_path / "sessions" / "0193f2a1-0000-7000-8000-000000000000.jsonl"
    if kind == "fifo":
        os.mkfifo(hostile)
    elif kind == "folder":
        hostile.mkdir()
    else:
        sock = socket.socket(socket.AF_UNIX)
        cwd = os.getcwd()
        os.chdir(hostile.parent)  # a socket's path must be short: bind it relative to its folder
        try:
            sock.bind(hostile.name)
        finally:
            os.chdir(cwd)
            sock.close()
    fresh = LocalSessionService.open(tmp_path)
    with pytest.warns(DamagedLogWarning, match="not a regular file"):
        listed = _run_with_deadline(lambda: [s.id for s in fresh.list_sessions()])
    assert listed == [good]
    found = _run_with_deadline(lambda: fresh.find_resumable("/p", None, 3600))
    assert getattr(found, "id", None) == good
    for call in (fresh.load_events, fresh.get_session, fresh.verify):
        with pytest.raises(SessionsError, match="not a regular file"):
            _run_with_deadline(lambda call=call: call(hostile.stem))


def test_an_index_that_is_a_fifo_is_passed_over(tmp_path: Path) -> None:
    service, (good,) = _store_with(tmp_path, "/p")
    service.close()
    (tmp_path / "index.jsonl").unlink()
    os.mkfifo(tmp_path / "index.jsonl")
    fresh = LocalSessionService.open(tmp_path)
    with pytest.warns(DamagedLogWarning, match=r"index\.jsonl"):
        listed = _run_with_deadline(lambda: [s.id for s in fresh.list_sessions()])
    assert listed == [good]
    report = _run_with_deadline(lambda: doctor(fresh, dry_run=True))
    assert report  # doctor answers rather than hanging on the index
    assert stat.S_ISFIFO(os.lstat(tmp_path / "index.jsonl").st_mode)


def test_deleting_locks_while_open_loses_nothing_and_comes_back_private(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/p", None)
    conversation: list[UserMessage | Text] = [UserMessage("one")]
    manager.persist_events(conversation)
    shutil.rmtree(tmp_path / "locks")
    conversation.append(Text("two"))
    manager.persist_events(conversation)  # not "create it first": the session is there
    manager.set_metadata("k", "v")
    assert stat.S_IMODE(os.stat(tmp_path / "locks").st_mode) == 0o700
    assert [e.event_type for e in LocalSessionService.open(tmp_path).load_events(manager.session_id)] == [
        "user_message",
        "text",
    ]


def test_after_locks_is_deleted_two_services_still_exclude_each_other(tmp_path: Path) -> None:
    """Both held the old lock file open; each must notice it is gone and lock the same new one."""
    one = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(one, "/p", None)
    manager.persist_events([UserMessage("x")])
    two = LocalSessionService.open(tmp_path, lock_timeout=0.05)
    two.set_metadata(manager.session_id, "k", "v")  # both now hold the lock file open
    shutil.rmtree(tmp_path / "locks")
    with one.session_lock(manager.session_id), pytest.raises(SessionBusy):
        two.set_metadata(manager.session_id, "k", "w")
    assert LocalSessionService.open(tmp_path).get_metadata(manager.session_id, "k") == "v"


@pytest.mark.parametrize("what", ["folder", "symlink"])
def test_a_session_lock_path_that_is_not_a_file_is_a_sessions_error(tmp_path: Path, what: str) -> None:
    service, (session_id,) = _store_with(tmp_path, "/p")
    service.close()
    lock = tmp_path / "locks" / f"{session_id}.lock"
    lock.unlink(missing_ok=True)
    if what == "folder":
        lock.mkdir()
    else:
        lock.symlink_to(tmp_path / "elsewhere")
    fresh = LocalSessionService.open(tmp_path)
    before = fresh.log_path(session_id).read_bytes()
    with pytest.raises(SessionsError):
        fresh.set_metadata(session_id, "k", "v")
    assert fresh.log_path(session_id).read_bytes() == before
    assert not (tmp_path / "elsewhere").exists()


def test_running_out_of_inodes_is_a_session_write_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/p", None)
    real_open = fs.open

    def no_inodes(path: Any, flags: int, mode: int = 0o777) -> int:
        if flags & os.O_CREAT:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, flags, mode)

    monkeypatch.setattr(fs, "open", no_inodes)
    with pytest.raises(SessionWriteError):
        manager.persist_events([UserMessage("x")])
    monkeypatch.undo()
    assert service.list_sessions() == []


def test_a_folder_name_that_is_not_utf8_is_saved_and_found_again(tmp_path: Path) -> None:
    odd = os.fsdecode(b"/home/me/caf\xe9")  # a Latin-1 name: os.getcwd() gives surrogate escapes
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, odd, os.fsdecode(b"/home/\xff"))
    manager.persist_events([UserMessage("x")])
    for store in (service, LocalSessionService.open(tmp_path)):
        found = store.find_resumable(odd, None, 3600)
        assert found is not None and found.id == manager.session_id
        # Kept readable and lossless: each byte that is not UTF-8 is written as \xNN.
        assert (found.directory, found.git_root) == ("/home/me/caf\\xe9", "/home/\\xff")
        assert store.find_resumable(None, os.fsdecode(b"/home/\xff"), 3600) is not None


@pytest.mark.parametrize("timeout", [float("inf"), 1e10, float("nan"), None, "2"])
def test_lock_timeouts_are_checked_at_open(tmp_path: Path, timeout: object) -> None:
    with pytest.raises(ValueError, match="lock_timeout"):
        LocalSessionService.open(tmp_path, lock_timeout=timeout)  # type: ignore[arg-type]


def test_two_torn_tails_at_the_same_offset_are_both_kept(tmp_path: Path) -> None:
    service, (session_id,) = _store_with(tmp_path, "/p")
    path = service.log_path(session_id)
    good = path.read_bytes()
    for fragment in (b'{"k":"event","first', b'{"k":"event","second'):
        path.write_bytes(good + fragment)
        assert LocalSessionService.open(tmp_path).repair_torn_tail(session_id) == len(fragment)
    kept = sorted(p.read_bytes() for p in (tmp_path / "trash").iterdir())
    assert kept == [b'{"k":"event","first', b'{"k":"event","second']


@contextmanager
def _file_size_limit(limit: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_a_merge_keeps_the_whole_torn_tail_or_fails_clearly(tmp_path: Path) -> None:
    """Under a file-size limit, the trash copy of a torn tail is whole, or the merge fails and changes nothing."""
    log = tmp_path / "a.jsonl"
    tail = b"x" * (3 << 20)
    log.write_bytes(b'{"k":"log","id":"a","ts":"2026-01-01T00:00:00Z"}\n' + tail)
    before = log.read_bytes()
    trash = tmp_path / "trash"
    with warnings.catch_warnings(), _file_size_limit(1 << 20):
        warnings.simplefilter("ignore")
        try:
            merge_into(log, [], trash_dir=trash)
        except OSError:
            assert log.read_bytes() == before  # refused before anything was cut
            return
    kept = [p.read_bytes() for p in trash.iterdir()]
    assert kept == [tail]


def test_a_copy_tool_that_restores_the_folder_mtime_cannot_hide_new_sessions(tmp_path: Path) -> None:
    """cp -a (as rsync -a) brings new logs and puts the folder's old mtime back; ctime still moves."""
    a, _ = _store_with(tmp_path / "a", "/p")
    a.list_sessions()
    a.close()
    b, (new,) = _store_with(tmp_path / "b", "/p")
    b.close()
    sessions_a = tmp_path / "a" / "sessions"
    old = os.stat(sessions_a)
    for log in (tmp_path / "b" / "sessions").iterdir():
        subprocess.run(["cp", "-a", str(log), str(sessions_a)], check=True)
    os.utime(sessions_a, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert os.stat(sessions_a).st_mtime_ns == old.st_mtime_ns
    for service in (LocalSessionService.open(tmp_path / "a"),):
        assert new in {s.id for s in service.list_sessions()}
        found = service.find_resumable("/p", None, 3600)
        assert found is not None


def test_doctor_removes_temporary_files_left_by_a_killed_merge(tmp_path: Path) -> None:
    service, (session_id,) = _store_with(tmp_path, "/p")
    leftover = tmp_path / "sessions" / f".{session_id}.jsonl.4242-1.tmp"
    leftover.write_bytes(b"half a merge")
    old = 10**9
    os.utime(leftover, (old, old))
    steps = doctor(service)
    assert not leftover.exists()
    assert any(leftover.name in line for _, lines in steps for line in lines)


@pytest.mark.parametrize("code", [errno.EIO, errno.ENOMEM], ids=["EIO", "ENOMEM"])
def test_a_read_error_is_a_clear_sessions_error_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    service, (broken, fine) = _store_with(tmp_path, "/p", "/q")
    service.close()
    before = {p.name: p.read_bytes() for p in (tmp_path / "sessions").iterdir()}
    real_pread, real_pread_into = fs.pread, fs.pread_into

    def refuse(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(f"{broken}.jsonl"):
            raise OSError(code, os.strerror(code))

    def failing(fd: int, n: int, offset: int) -> bytes:
        refuse(fd)
        return real_pread(fd, n, offset)

    def failing_into(fd: int, buffer: memoryview, offset: int) -> int:
        refuse(fd)
        return real_pread_into(fd, buffer, offset)

    monkeypatch.setattr(fs, "pread", failing)
    monkeypatch.setattr(fs, "pread_into", failing_into)
    fresh = LocalSessionService.open(tmp_path)
    (tmp_path / "index.jsonl").unlink()  # so the logs themselves must be read
    for call in (fresh.load_events, fresh.get_session, fresh.verify):
        with pytest.raises(SessionReadError, match=broken):
            call(broken)
    with pytest.warns(DamagedLogWarning, match=broken):
        assert [s.id for s in fresh.list_sessions()] == [fine]
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in (tmp_path / "sessions").iterdir()} == before


def test_one_very_long_line_resumes_in_time_linear_in_its_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader that re-copied the partial line on every chunk took 10 s for one 32 MiB event (35 s for 64 MiB).

    With 1 KiB chunks, a 16 MiB line would cost such a reader ~128 GB of copying; a linear one reads it at once.
    """
    monkeypatch.setattr(eventlog.reader, "CHUNK_BYTES", 1024)
    service = LocalSessionService.open(tmp_path, durability="flush")
    manager = SessionManager.create_new(service, "/p", None)
    huge = Text("x" * (16 << 20))
    manager.persist_events([UserMessage("before"), huge, UserMessage("after")])
    fresh = LocalSessionService.open(tmp_path)
    stored = fresh.get_session(manager.session_id)
    assert stored is not None
    resumed = _run_with_deadline(lambda: SessionManager.resume(fresh, stored))
    assert getattr(resumed, "events", None) == [UserMessage("before"), huge, UserMessage("after")]
    last = _run_with_deadline(lambda: fresh.load_events(manager.session_id, last=2))
    assert [e.event_type for e in last] == ["text", "user_message"]  # type: ignore[attr-defined]
