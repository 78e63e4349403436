"""Suite 1: SIGKILL a real writer process at random moments, many times over.

After every kill: every acknowledged event is on disk, loads, in order, exactly
once; the chain is valid; metadata is at least as new as the last acknowledged
write. Now and then the test also leaves a torn tail (the bytes a power cut
could leave of an unsynced write) and checks the next writer repairs it,
keeping the fragment in the trash.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from eventlog import encode_records, new_id, read_log, utcnow
from eventlog.record import KIND_EVENT, Record
from sessions import LocalSessionService, SessionManager, UserMessage
from tests.support._support import assert_chain_valid, event_contents, run_script


@dataclass
class CrashRun:
    kills: int = 0
    acked: int = 0
    torn_injected: int = 0
    torn_repaired: int = 0
    seconds: float = 0.0


def _tear(path: Path, rng: random.Random) -> bytes:
    """Append a cut-short record, as a crash in the middle of an unsynced write leaves one."""
    line = encode_records([Record(k=KIND_EVENT, id=new_id(), ts=utcnow(), parent=None, type="text")])
    fragment = line[: rng.randint(1, len(line) - 2)]
    with open(path, "ab") as f:
        f.write(fragment)
    return fragment


def crash_loop(tmp_path: Path, durability: str, kills: int, seed: int) -> CrashRun:
    rng = random.Random(seed)
    service = LocalSessionService.open(tmp_path, durability=durability)
    session_id = new_id()
    service.create_session(session_id, "/work", None)
    path = service.log_path(session_id)
    run = CrashRun()
    last_ack = 0
    last_meta = 0
    torn_pending: bytes | None = None
    started = time.monotonic()
    for attempt in range(kills):
        proc = run_script("crash_writer.py", str(tmp_path), session_id, durability, str(seed * 1000 + attempt))
        assert proc.stdout is not None
        wait_for = rng.choice([0, 1, 1, 2, 3, 5, 8])
        seen = 0
        while seen < wait_for:
            line = proc.stdout.readline()
            if not line:
                break
            kind, _, value = line.partition(" ")
            if kind == "ack":
                last_ack = int(value)
                seen += 1
            elif kind == "meta":
                last_meta = int(value)
        if torn_pending is not None and seen:
            # The writer appended since we tore the tail: it must have cut it off and kept it.
            run.torn_repaired += 1
            kept = list((tmp_path / "trash").glob(f"{session_id}.torn-*"))
            assert any(k.read_bytes() == torn_pending for k in kept), "torn tail not kept in the trash"
            torn_pending = None
        time.sleep(rng.random() * 0.02)
        os.kill(proc.pid, signal.SIGKILL)
        # Acks printed before the kill landed still count: they were acknowledged.
        out, err = proc.communicate()
        for line in out.splitlines():
            kind, _, value = line.partition(" ")
            if kind == "ack":
                last_ack = int(value)
            elif kind == "meta":
                last_meta = int(value)
        assert proc.returncode == -signal.SIGKILL, err
        run.kills += 1

        contents = event_contents(tmp_path, session_id)
        assert len(contents) >= last_ack, f"kill {attempt}: {last_ack} acknowledged, {len(contents)} on disk"
        assert contents == [f"e{i}" for i in range(len(contents))], f"kill {attempt}: events out of order or repeated"
        # SIGKILL can also cut the writer's own write short: Linux checks for a fatal signal between
        # the pages a write() copies, so a batch across a page boundary can land in part. Then the
        # tail must be the start of one of its own lines (the next writer cuts it off, checked below).
        assert_chain_valid(path, torn_allowed=True)
        tail = path.read_bytes()
        tail = tail[tail.rfind(b"\n") + 1 :]
        assert not tail or tail == torn_pending or tail.startswith(b'{"k":"'[: len(tail)]), tail
        stored = LocalSessionService.open(tmp_path).get_metadata(session_id, "last")
        assert int(stored or 0) >= last_meta
        if torn_pending is None and rng.random() < 0.15:
            torn_pending = _tear(path, rng)
            run.torn_injected += 1
    run.acked = last_ack
    run.seconds = time.monotonic() - started
    # A last writer run repairs whatever tail is left and goes on from where the others stopped.
    proc = run_script("crash_writer.py", str(tmp_path), session_id, durability, str(seed))
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("ack")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert read_log(path).torn is None
    assert_chain_valid(path)
    return run


@pytest.mark.slow
@pytest.mark.parametrize("durability", ["fsync", "flush"])
def test_sigkill_quick(tmp_path: Path, durability: str) -> None:
    run = crash_loop(tmp_path, durability, kills=25, seed=4)
    assert run.kills == 25
    assert run.acked > 0


@pytest.mark.stress
@pytest.mark.parametrize("durability", ["fsync", "flush"])
def test_sigkill_stress(tmp_path: Path, durability: str) -> None:
    kills = int(os.environ.get("RELIABILITY_KILLS", "200"))
    seed = int(os.environ.get("RELIABILITY_SEED", "20261125"))
    run = crash_loop(tmp_path, durability, kills=kills, seed=seed)
    print(f"\ncrash[{durability}]: {run}")
    assert run.kills == kills
    assert run.torn_injected > 0


def kill_among_writers(root: Path, *, writers: int, kills: int, durability: str, seed: int) -> dict[str, int]:
    """Writers share one session; one at a time is SIGKILLed (maybe holding the lock) and replaced.

    The others must go on (a dead writer's lock is released with its process), and
    every event any of them acknowledged must be on disk once, in its writer's order.
    """
    rng = random.Random(seed)
    service = LocalSessionService.open(root, durability=durability)
    session_id = new_id()
    service.create_session(session_id, "/shared", None)
    go = root / "go"
    go.touch()
    acked: Counter[str] = Counter()
    guard = threading.Lock()
    running: dict[str, tuple[subprocess.Popen[str], threading.Thread]] = {}

    def pump(proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("ack "):
                tag, _, n = line[4:].strip().partition(":")
                with guard:
                    acked[tag] = max(acked[tag], int(n) + 1)

    def start(tag: str) -> None:
        args = ["shared", str(root), session_id, tag, "10000000", durability, str(go)]
        proc = run_script("concurrency_worker.py", *args)
        thread = threading.Thread(target=pump, args=(proc,))
        thread.start()
        running[tag] = (proc, thread)

    def kill(tag: str) -> None:
        proc, thread = running.pop(tag)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        thread.join()
        assert proc.returncode == -signal.SIGKILL
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()

    for n in range(writers):
        start(f"k{n}")
    for n in range(kills):
        time.sleep(rng.uniform(0.02, 0.25))
        kill(rng.choice(sorted(running)))
        start(f"k{writers + n}")
    with guard:
        before = sum(acked.values())
    time.sleep(2.0)
    with guard:
        after = sum(acked.values())
    assert after > before, "the surviving writers stopped making progress"
    for tag in sorted(running):
        kill(tag)

    contents = event_contents(root, session_id)
    assert len(set(contents)) == len(contents), "an event was written twice"
    for tag in set(acked) | {c.partition(":")[0] for c in contents}:
        mine = [c for c in contents if c.startswith(f"{tag}:")]
        assert mine == [f"{tag}:{i}" for i in range(len(mine))], f"{tag}: out of order"
        assert len(mine) >= acked[tag], f"{tag}: {acked[tag]} acknowledged, {len(mine)} on disk"
    assert_chain_valid(service.log_path(session_id))
    return {"kills": kills, "events": len(contents), "acknowledged": sum(acked.values())}


@pytest.mark.slow
def test_sigkill_among_concurrent_writers_quick(tmp_path: Path) -> None:
    kill_among_writers(tmp_path, writers=4, kills=12, durability="fsync", seed=7)


@pytest.mark.stress
@pytest.mark.parametrize("durability", ["fsync", "flush"])
def test_sigkill_among_concurrent_writers_stress(tmp_path: Path, durability: str) -> None:
    kills = int(os.environ.get("RELIABILITY_KILLS", "200"))
    figures = kill_among_writers(tmp_path, writers=4, kills=kills, durability=durability, seed=11)
    print(f"\nkills among writers[{durability}]: {figures}")


def _cut_and_regrow_within_one_tick(root: Path) -> tuple[str, str | None]:
    """Save an index covering two events, then cut the last one off (a power cut took it) and have
    another writer append one of the same length, all within one tick of the file-system clock.

    :returns: the session id and the head the other writer left.
    """
    service = LocalSessionService.open(root)
    manager = SessionManager.create_new(service, "/p", None)
    manager.persist_events([UserMessage("a"), UserMessage("b")])
    service.list_sessions()
    service.close()  # the saved index now covers both events
    path = service.log_path(manager.session_id)
    saved = os.stat(path)
    content = path.read_bytes()
    os.truncate(path, content.rstrip(b"\n").rfind(b"\n") + 1)
    fresh = LocalSessionService.open(root)
    stored = fresh.get_session(manager.session_id)
    assert stored is not None
    resumed = SessionManager.resume(fresh, stored)
    resumed.manager.persist_events([*resumed.events, UserMessage("c")])
    assert os.path.getsize(path) == saved.st_size, "the regrown log must be as long as before for this case"
    os.utime(path, ns=(saved.st_atime_ns, saved.st_mtime_ns))  # the same coarse-clock tick
    return manager.session_id, resumed.manager.head_id


def test_log_cut_and_regrown_to_the_same_size_within_one_clock_tick(tmp_path: Path) -> None:
    _, head = _cut_and_regrow_within_one_tick(tmp_path)
    # A new process sees only index.jsonl and the log: the racy stamp is settled by the log's last bytes.
    listed = LocalSessionService.open(tmp_path).list_sessions()
    assert [s.head_id for s in listed] == [head]


def test_appends_are_not_wedged_by_a_summary_of_other_bytes(tmp_path: Path) -> None:
    """The same cut-and-regrow: a process that listed first must still resume and append."""
    session_id, head = _cut_and_regrow_within_one_tick(tmp_path)
    third = LocalSessionService.open(tmp_path)
    third.list_sessions()
    stored = third.get_session(session_id)
    assert stored is not None and stored.head_id == head
    again = SessionManager.resume(third, stored)
    again.manager.persist_events([*again.events, UserMessage("d")])
    assert event_contents(tmp_path, session_id) == ["a", "c", "d"]
