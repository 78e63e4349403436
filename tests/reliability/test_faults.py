"""Suite 2: I/O faults. Hypothesis picks which call of open/write/fsync/replace/ftruncate fails, and how.

After each fault: the call raised a library error (``SessionsError``) naming
the session; the log still loads with every event acknowledged before the
fault; the index on disk is never ahead of the log; and a retry with the same
manager writes the missing events exactly once.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Final

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlog import read_log
from sessions import (
    ConversationEvent,
    LocalSessionService,
    SessionExists,
    SessionManager,
    SessionsError,
    SessionWriteError,
    UnknownEvent,
    UserMessage,
)
from sessions.index import Row
from tests.support._support import assert_chain_valid, event_contents
from tests.support.faults import KINDS, OPS, Fault, Injector

STEPS: Final = ("persist", "persist", "persist", "metadata", "list", "find", "close")
TALLY: Final[Counter[str]] = Counter()

fault_st = st.builds(Fault, op=st.sampled_from(OPS), nth=st.integers(1, 6), kind=st.sampled_from(KINDS))
# A write or sync that fails and then a rollback that fails too: the batch may be partly on disk.
failed_rollback_st = st.builds(
    lambda first, rollback: [first, rollback],
    st.builds(Fault, op=st.sampled_from(["write", "fsync"]), nth=st.integers(1, 4), kind=st.sampled_from(KINDS)),
    st.builds(Fault, op=st.sampled_from(["ftruncate", "fsync"]), nth=st.integers(1, 4), kind=st.just("EIO")),
)
faults_st = st.one_of(st.lists(fault_st, min_size=1, max_size=3), failed_rollback_st)


def index_not_ahead(root: Path) -> None:
    """Every saved index entry covers no more of its log than the log holds."""
    index = root / "index.jsonl"
    if not index.exists():
        return
    for line in index.read_bytes().splitlines():
        try:
            row = msgspec.json.decode(line, type=Row)
        except msgspec.DecodeError:
            continue  # a damaged line is skipped; it cannot mislead
        log = root / "sessions" / f"{row.session.id}.jsonl"
        complete = read_log(log).size
        if row.log.ino == os.stat(log).st_ino:
            assert row.log.size <= complete, f"index covers {row.log.size} bytes, log has {complete}"


def run_scenario(root: Path, durability: str, baseline: int, faults: list[Fault], steps: list[str]) -> None:
    service = LocalSessionService.open(root, durability=durability)
    manager = SessionManager.create_new(service, "/project", None)
    events: list[ConversationEvent | UnknownEvent] = []
    for _ in range(baseline):
        events.append(UserMessage(f"e{len(events)}"))
        manager.persist_events(events)
    acked = len(events)
    meta_acked: str | None = None
    injector = Injector(faults)
    with injector.armed():
        for step in steps:
            try:
                if step == "persist":
                    events.append(UserMessage(f"e{len(events)}"))
                    events.append(UserMessage(f"e{len(events)}"))
                    manager.persist_events(events)
                    acked = len(events)
                elif step == "metadata":
                    value = f"v{len(events)}"
                    manager.set_metadata("k", value)
                    meta_acked = value
                elif step == "list":
                    service.list_sessions()
                elif step == "find":
                    service.find_resumable("/project", None, 3600)
                else:
                    service.close()
            except SessionWriteError as exc:
                assert manager.session_id in str(exc), str(exc)
                TALLY["write errors raised"] += 1
                if not getattr(exc.__cause__, "rolled_back", True):
                    TALLY["not rolled back"] += 1
            except SessionsError as exc:
                pytest.fail(f"{step}: unexpected {type(exc).__name__}: {exc}")
    TALLY["examples"] += 1
    TALLY["faults injected"] += len(injector.injected)
    for fault in injector.injected:
        TALLY[f"{fault.op}/{fault.kind}"] += 1

    index_not_ahead(root)
    if acked or manager.persisted_count:
        on_disk = event_contents(root, manager.session_id)
        assert on_disk[:acked] == [f"e{i}" for i in range(acked)], "an acknowledged event was lost"
        assert on_disk == [f"e{i}" for i in range(len(on_disk))], "events repeated or out of order"
        if meta_acked is not None:
            assert LocalSessionService.open(root).get_metadata(manager.session_id, "k") is not None

    # The same manager, the disk healthy again: the retry writes what is missing, once.
    events.append(UserMessage(f"e{len(events)}"))
    manager.persist_events(events)
    if meta_acked is not None or "metadata" in steps:
        manager.set_metadata("k", "final")
    service.close()
    path = service.log_path(manager.session_id)
    assert event_contents(root, manager.session_id) == [f"e{i}" for i in range(len(events))]
    assert_chain_valid(path)
    assert read_log(path).torn is None
    fresh = LocalSessionService.open(root)
    stored = fresh.get_session(manager.session_id)
    assert stored is not None and stored.event_count == len(events)
    if "metadata" in steps:
        assert fresh.get_metadata(manager.session_id, "k") == "final"
    assert [s.id for s in fresh.list_sessions()] == [manager.session_id]
    index_not_ahead(root)


def check(examples: int) -> None:
    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        durability=st.sampled_from(["fsync", "flush"]),
        baseline=st.integers(0, 2),
        faults=faults_st,
        steps=st.lists(st.sampled_from(STEPS), min_size=1, max_size=6),
    )
    def scenario(durability: str, baseline: int, faults: list[Fault], steps: list[str]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            run_scenario(Path(tmp), durability, baseline, faults, steps)

    scenario()


def test_faults_quick() -> None:
    check(150)
    assert TALLY["faults injected"] > 0


@pytest.mark.stress
def test_faults_stress() -> None:
    TALLY.clear()
    check(int(os.environ.get("RELIABILITY_FAULT_EXAMPLES", "5000")))
    print(f"\nfaults: {dict(TALLY)}")


def test_torn_tail_copy_is_whole_after_a_short_write(tmp_path: Path) -> None:
    """The fragment a repair cuts off is first kept whole, even if the disk writes it in pieces."""
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/p", None)
    events: list[ConversationEvent | UnknownEvent] = [UserMessage("e0")]
    manager.persist_events(events)
    fragment = b'{"k":"event","id":"0192-torn","ts":"2026-01-01T00:00:00Z","da'
    with open(service.log_path(manager.session_id), "ab") as f:
        f.write(fragment)
    events.append(UserMessage("e1"))
    with Injector([Fault("write", 1, "short")]).armed() as injector:
        manager.persist_events(events)
    assert injector.injected == [Fault("write", 1, "short")]
    kept = list((tmp_path / "trash").iterdir())
    assert [k.read_bytes() for k in kept] == [fragment]
    assert event_contents(tmp_path, manager.session_id) == ["e0", "e1"]


def test_create_that_fails_at_the_directory_sync_can_be_retried(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path, durability="fsync")
    manager = SessionManager.create_new(service, "/p", None)
    events: list[ConversationEvent | UnknownEvent] = [UserMessage("e0")]
    # fsync #1 syncs the new log's header, #2 its directory entry.
    with Injector([Fault("fsync", 2, "EIO")]).armed() as injector, pytest.raises(SessionWriteError) as raised:
        manager.persist_events(events)
    assert injector.injected and manager.session_id in str(raised.value)
    manager.persist_events(events)
    assert event_contents(tmp_path, manager.session_id) == ["e0"]


@pytest.mark.parametrize(
    "faults",
    [
        [Fault("write", 1, "EIO"), Fault("unlink", 1, "EIO")],
        [
            Fault("write", 1, "short"),
            Fault("write", 2, "ENOSPC"),
            Fault("ftruncate", 1, "EIO"),
            Fault("unlink", 1, "EIO"),
        ],
        [Fault("fchmod", 1, "EIO"), Fault("unlink", 1, "ENOSPC")],
        # fsync #1 syncs the header, #2 the folder: the whole header is left behind.
        [Fault("fsync", 2, "EIO"), Fault("unlink", 1, "EIO")],
    ],
    ids=["empty-left", "half-header-left", "chmod-failed", "header-left"],
)
def test_create_that_failed_and_could_not_clean_up_can_be_retried(tmp_path: Path, faults: list[Fault]) -> None:
    """A create whose clean-up failed too leaves a part or all of its header; the retry reclaims the file."""
    service = LocalSessionService.open(tmp_path, durability="fsync")
    manager = SessionManager.create_new(service, "/p", None)
    events: list[ConversationEvent | UnknownEvent] = [UserMessage("e0")]
    with Injector(faults).armed() as injector, pytest.raises(SessionWriteError):
        manager.persist_events(events)
    assert injector.injected == faults
    leftover = service.log_path(manager.session_id).read_bytes()
    torn = b"\n" not in leftover
    manager.persist_events(events)
    assert event_contents(tmp_path, manager.session_id) == ["e0"]
    found = LocalSessionService.open(tmp_path).find_resumable("/p", None, 60)
    assert found is not None and found.id == manager.session_id
    kept = [p.read_bytes() for p in (tmp_path / "trash").iterdir()] if torn and leftover else []
    assert kept == ([leftover] if torn and leftover else [])
    if not torn:
        assert service.log_path(manager.session_id).read_bytes().startswith(leftover), "the header was rewritten"


def test_create_does_not_reclaim_a_real_log(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/p", None)
    manager.persist_events([UserMessage("e0")])
    before = service.log_path(manager.session_id).read_bytes()
    with pytest.raises(SessionExists):
        service.create_session(manager.session_id, "/elsewhere", None)
    assert service.log_path(manager.session_id).read_bytes() == before
