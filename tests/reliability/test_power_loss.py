"""Suite 7: power loss. Cut the power at every point of a workload, under two file-system models.

A workload is a short sequence of steps against a real store opened with
``durability="fsync"``: turns written with ``SessionManager.batch()``, plain
persists, metadata, server ids, archiving, a torn tail laid down and repaired,
a sync tool's conflict copy laid down and merged with ``merge_conflict_copies``,
listings (which save index rows), and closing and reopening the service. The
index's compaction threshold is lowered so that it also compacts. Every
file-system call the library makes is recorded (``tests/support/powercut.py``),
and each step notes what it acknowledged: what the call wrote, from the moment
it returned.

Then, for every prefix of the trace (every point where the power could go), the
state a power cut could leave is rebuilt in a fresh folder under the strict
``posix`` model and the ``ext4`` (``data=ordered``) model, and opened with the
library. In every state:

- the store opens, finds each acknowledged session with ``find_resumable`` (called
  first, as an application starting up does), lists and loads without an error,
  and lists exactly the logs there are;
- every session, event and fact acknowledged before the cut is there: the
  session and its directory, its events (in order, once each: the loaded events
  are a prefix of those written, at least as long as those acknowledged), its
  metadata, server id and archived flag (the last value acknowledged, or one
  written after it); nothing written only after the cut is there;
- ``verify`` finds no damage (a torn tail is allowed: a cut write leaves one);
- a torn tail laid down and acknowledged is still the log's tail, or whole in ``trash/``;
- the store can go on: each acknowledged session resumes and takes one more
  event, after which its log verifies clean and any torn tail it had is in
  ``trash/``, and a new session can be created.

One bug these checks found is not fixed yet (it is in code this suite may not
change): ``test_find_resumable_after_a_torn_index_row`` pins it down as a strict
xfail, and while it reproduces the runs count the states that show it apart
(and go on checking them) instead of failing.

``RELIABILITY_POWER_WORKLOADS`` sets how many random workloads the long run checks.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from unittest import mock

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eventlog.durability
import eventlog.logfile
import eventlog.trash
import sessions.index
from eventlog import KIND_EVENT, KIND_FACT, Record, _fs, encode_records, new_id, read_log, sync_dir, utcnow
from sessions import (
    DamagedLogWarning,
    LocalSessionService,
    SessionManager,
    Text,
    UserMessage,
)
from sessions.conflicts import merge_conflict_copies
from sessions.events import EventBase
from tests.support.powercut import MODELS, CrashState, Op, Recorder, Snapshot, crash_states, materialize

KINDS: Final = ("turn", "persist", "metadata", "server", "archive", "torn", "repair", "copy", "list", "reopen")
Step = tuple[str, int, int]
"""(kind, which of the two sessions, a size from 1 to 3)."""

TOUR: Final[list[Step]] = [
    ("turn", 0, 2),
    ("metadata", 0, 3),
    ("persist", 1, 1),
    ("server", 0, 3),
    ("torn", 0, 2),
    ("persist", 0, 1),
    ("list", 0, 1),
    ("copy", 0, 2),
    ("turn", 0, 1),
    ("torn", 1, 1),
    ("repair", 1, 1),
    ("torn", 0, 3),
    ("copy", 0, 1),
    ("metadata", 1, 2),
    ("archive", 1, 1),
    ("reopen", 0, 1),
    ("turn", 1, 3),
]
"""A fixed workload that takes every kind of step at least once."""

STORE: Final = "store"
AFTER: Final = "after the power came back"
TALLY: Final[Counter[str]] = Counter()

step_st = st.tuples(st.sampled_from(KINDS), st.integers(0, 1), st.integers(1, 3))


# -- what each call acknowledged ------------------------------------------------------------------


@dataclass
class Call:
    """One call of the library: ``start`` ops were recorded before it began, ``end`` when it returned."""

    start: int
    end: int | None = None

    def returned(self, cut: int) -> bool:
        """It returned (acknowledged what it wrote) before a cut after ``cut`` ops."""
        return self.end is not None and self.end <= cut

    def began(self, cut: int) -> bool:
        """Some of what it wrote may be on disk after a cut after ``cut`` ops."""
        return self.start < cut or self.returned(cut)


Writes = list[tuple[str, Call]]


def allowed(writes: Writes, cut: int) -> set[str | None]:
    """The values a key may hold after a cut: the last one acknowledged, or one written after it."""
    last = max((i for i, (_, call) in enumerate(writes) if call.returned(cut)), default=-1)
    values: set[str | None] = {None} if last < 0 else set()
    values.update(value for value, call in writes[max(last, 0) :] if call.began(cut))
    return values


@dataclass
class Session:
    """One session of a workload, and the ledger of what was written to it."""

    directory: str
    manager: SessionManager
    conversation: list[EventBase] = field(default_factory=list)
    created: Call | None = None
    events: Writes = field(default_factory=list)
    metadata: dict[str, Writes] = field(default_factory=dict)
    server: Writes = field(default_factory=list)
    archived: list[Call] = field(default_factory=list)
    torn: list[tuple[int, bytes, Call]] = field(default_factory=list)
    """Torn tails laid down: (offset in the log, bytes, the call that laid it down)."""
    torn_pending: bool = False

    @property
    def id(self) -> str:
        return self.manager.session_id

    @property
    def log(self) -> str:
        return f"{STORE}/sessions/{self.id}.jsonl"


# -- the workload -----------------------------------------------------------------------------------


class Workload:
    """Runs steps against a real store below ``base`` while ``recorder`` records, keeping the ledger."""

    def __init__(self, base: Path, recorder: Recorder) -> None:
        self.root = base / STORE
        self.recorder = recorder
        self.calls: list[Call] = []
        self.counter = 0
        self.tally: Counter[str] = Counter()
        with self.call():
            self.service = LocalSessionService.open(self.root, durability="fsync")
        self.sessions = [
            Session(f"/project/{n}", SessionManager.create_new(self.service, f"/project/{n}", None)) for n in range(2)
        ]

    @contextlib.contextmanager
    def call(self) -> Iterator[Call]:
        call = Call(len(self.recorder.ops))
        self.calls.append(call)
        yield call
        call.end = len(self.recorder.ops)

    def acknowledged(self, cut: int) -> tuple[int, int]:
        """How many calls had returned and how many had begun at a cut: what the checks depend on."""
        return sum(call.returned(cut) for call in self.calls), sum(call.began(cut) for call in self.calls)

    def run(self, step: Step) -> None:
        kind, who, size = step
        getattr(self, f"_{kind}")(self.sessions[who], size)
        self.recorder.check_against_disk()

    def _next(self, prefix: str, length: int = 0) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}".ljust(length, ".")

    def _created(self, session: Session, call: Call) -> None:
        if session.created is None:
            session.created = call
        session.torn_pending = False  # any append cuts a torn tail off first

    # -- steps ------------------------------------------------------------------------------------

    def _turn(self, session: Session, size: int) -> None:
        contents = [self._next("turn-") for _ in range(size)]
        value = self._next("t")
        server = self._next("srv-") if size != 2 else None
        with self.call() as call, session.manager.batch():
            session.conversation.extend(UserMessage(c) if i % 2 == 0 else Text(c) for i, c in enumerate(contents))
            session.manager.persist_events(session.conversation)
            session.manager.set_metadata("turn", value)
            if server is not None:
                session.manager.persist_server_session_id(server)
        self._created(session, call)
        session.events.extend((c, call) for c in contents)
        session.metadata.setdefault("turn", []).append((value, call))
        if server is not None:
            session.server.append((server, call))

    def _persist(self, session: Session, size: int) -> None:
        contents = [self._next("event-") for _ in range(size)]
        session.conversation.extend(UserMessage(c) for c in contents)
        with self.call() as call:
            session.manager.persist_events(session.conversation)
        self._created(session, call)
        session.events.extend((c, call) for c in contents)

    def _metadata(self, session: Session, size: int) -> None:
        key = ("tracker", "permissions")[size % 2]
        value = self._next("value-", (8, 200, 700)[size - 1])  # inline in the summary, or kept by offset
        with self.call() as call:
            session.manager.set_metadata(key, value)
        self._created(session, call)
        session.metadata.setdefault(key, []).append((value, call))

    def _server(self, session: Session, size: int) -> None:
        value = self._next("server-", 600 if size == 3 else 0)
        with self.call() as call:
            session.manager.persist_server_session_id(value)
        self._created(session, call)
        session.server.append((value, call))

    def _archive(self, session: Session, size: int) -> None:
        if session.created is None:
            return
        wrote = not session.archived  # archiving an archived session writes nothing, so it cuts no torn tail off
        with self.call() as call:
            session.manager.archive()
        if wrote:
            self._created(session, call)
        session.archived.append(call)

    def _torn(self, session: Session, size: int) -> None:
        """Lay down a torn tail, durably: the part of a record an earlier power cut left."""
        if session.created is None or session.torn_pending:
            return
        line = encode_records([_event_record(self._next("torn-"), None, "crashed-writer")])
        fragment = line[: max(1, len(line) * size // 4)]
        with self.call() as call:
            fd = _fs.open(self.root.parent / session.log, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            try:
                offset = os.fstat(fd).st_size
                _fs.write_all(fd, fragment)
                _fs.fsync(fd)
            finally:
                os.close(fd)
        session.torn.append((offset, fragment, call))
        session.torn_pending = True
        self.tally["torn tails laid down"] += 1

    def _repair(self, session: Session, size: int) -> None:
        if session.created is None:
            return
        with self.call():
            self.service.repair_torn_tail(session.id)
        session.torn_pending = False

    def _copy(self, session: Session, size: int) -> None:
        """Lay down a sync tool's conflict copy (the log plus another machine's events and a fact), then merge it."""
        if session.created is None:
            return
        log = self.root.parent / session.log
        body = log.read_bytes()
        body = body[: body.rfind(b"\n") + 1]
        heads = [r.id for r in read_log(log).records if r.k == KIND_EVENT]
        parent = heads[-1] if heads else None
        contents = [self._next("remote-") for _ in range(size)]
        records = []
        for content in contents:
            records.append(_event_record(content, parent, "other-machine"))
            parent = records[-1].id
        value = self._next("r")
        records.append(Record(k=KIND_FACT, id=new_id(), ts=utcnow(), type="metadata", key="remote", data=_raw(value)))
        copy = log.with_name(f"{session.id}.sync-conflict-20260101-{self.counter:06d}-ABCDEFG.jsonl")
        with self.call() as laid:
            fd = _fs.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                _fs.write_all(fd, body + encode_records(records))
                _fs.fsync(fd)
            finally:
                os.close(fd)
            sync_dir(copy.parent)
        # From here every reader sees the union: the copy's lines count as written.
        session.events.extend((c, laid) for c in contents)
        session.metadata.setdefault("remote", []).append((value, laid))
        with self.call():
            merged = merge_conflict_copies(self.service, dry_run=False)
        assert [m.error for m in merged] == [None], merged
        self.tally["conflict copies merged"] += 1
        session.torn_pending = False
        self._resume(session)

    def _list(self, session: Session, size: int) -> None:
        with self.call():
            self.service.list_sessions(include_archived=True)
            self.service.find_resumable(session.directory, None, 3600)

    def _reopen(self, session: Session, size: int) -> None:
        with self.call():
            self.service.close()
            self.service = LocalSessionService.open(self.root, durability="fsync")
        for each in self.sessions:
            if each.created is not None:
                self._resume(each)
            else:  # nothing written yet: a new manager on the new service (with a new id)
                each.manager = SessionManager.create_new(self.service, each.directory, None)

    def _resume(self, session: Session) -> None:
        stored = self.service.get_session(session.id)
        assert stored is not None
        resumed = SessionManager.resume(self.service, stored)
        session.manager, session.conversation = resumed.manager, list(resumed.events)
        assert _contents(session.conversation) == [c for c, _ in session.events]


def _raw(value: object) -> msgspec.Raw:
    return msgspec.Raw(msgspec.json.encode(value))


def _event_record(content: str, parent: str | None, inv: str) -> Record:
    return Record(
        k=KIND_EVENT,
        id=new_id(),
        ts=utcnow(),
        parent=parent,
        inv=inv,
        type="user_message",
        data=_raw({"content": content}),
    )


def _contents(events: list[EventBase]) -> list[str]:
    return [e.content for e in events if isinstance(e, UserMessage | Text)]


# -- the checks ---------------------------------------------------------------------------------------

_LOG_NAME: Final = re.compile(rf"{STORE}/sessions/([0-9a-f-]{{36}})\.jsonl")


def check_crash_state(state: CrashState, work: Workload, folder: Path) -> None:
    """Rebuild ``state`` in the empty ``folder``, open it with the library and check it against the ledger.

    :raises AssertionError: for anything that breaks a promise.
    """
    inos = materialize(state, folder)
    _translate_inodes(folder / STORE / "index.jsonl", inos)
    check = CrashCheck(work, state.snapshot, state.cut)
    check.torn_tails_kept()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedLogWarning)
        service = LocalSessionService.open(folder / STORE, durability="fsync")
        try:
            check.reads(service)
            check.recovery(service)
        finally:
            service.close()


class CrashCheck:
    """The checks of one crash state (``snapshot``, a power cut after ``cut`` ops) against the ledger."""

    def __init__(self, work: Workload, snapshot: Snapshot, cut: int) -> None:
        self.sessions, self.snapshot, self.cut = work.sessions, snapshot, cut

    def acknowledged(self, session: Session) -> bool:
        return session.created is not None and session.created.returned(self.cut)

    def torn_tails_kept(self) -> None:
        """A torn tail laid down before the cut is still the log's tail, or whole in trash/ (checked before opening)."""
        trash = set(self.snapshot.under(f"{STORE}/trash").values())
        for session in self.sessions:
            log = self.snapshot.file(session.log)
            for offset, fragment, call in session.torn:
                if call.returned(self.cut):
                    kept = log is not None and len(log) == offset + len(fragment) and log.endswith(fragment)
                    assert kept or fragment in trash, f"{session.id}: torn tail at {offset} not in the log or trash/"

    def reads(self, service: LocalSessionService) -> None:
        cut = self.cut
        # What an application does first when the power is back: look for the session to continue.
        for session in self.sessions:
            self.resumable(service, session)
        listed = {s.id: s for s in service.list_sessions(include_archived=True)}
        active = {s.id for s in service.list_sessions()}
        logs = {m[1] for name, _ in self.snapshot.files if (m := _LOG_NAME.fullmatch(name))}
        assert set(listed) == logs, f"listed {sorted(listed)}, but the logs are {sorted(logs)}"
        assert logs <= {s.id for s in self.sessions}, "a log nobody wrote"
        for session in self.sessions:
            sid = session.id
            if session.created is None or not session.created.began(cut):
                assert sid not in logs, f"{sid}: there before it was written"
                continue
            if sid not in logs:
                assert not self.acknowledged(session), f"{sid}: an acknowledged session was lost"
                continue
            stored = service.get_session(sid)
            assert stored is not None
            events = service.load_events(sid)
            assert len({e.id for e in events}) == len(events), f"{sid}: an event twice"
            loaded = [msgspec.json.decode(e.event_data)["content"] for e in events]
            written = [c for c, call in session.events if call.began(cut)]
            acked = sum(call.returned(cut) for _, call in session.events)
            assert loaded == written[: len(loaded)], f"{sid}: events {loaded} are not a prefix of {written}"
            assert len(loaded) >= acked, f"{sid}: {acked} events acknowledged, {len(loaded)} loaded: {loaded}"
            assert stored.event_count == listed[sid].event_count == len(loaded), f"{sid}: counts disagree"
            if self.acknowledged(session):
                assert (stored.directory, stored.git_root) == (session.directory, None), f"{sid}: {stored}"
            for key, writes in session.metadata.items():
                value = service.get_metadata(sid, key)
                assert value in allowed(writes, cut), f"{sid}: metadata {key}={value!r}, not {allowed(writes, cut)}"
            server = stored.server_session_id
            assert server in allowed(session.server, cut), f"{sid}: server id {server!r}"
            if any(call.returned(cut) for call in session.archived):
                assert stored.archived_at is not None and sid not in active, f"{sid}: acknowledged archive lost"
            if not any(call.began(cut) for call in session.archived):
                assert stored.archived_at is None and sid in active, f"{sid}: archived before archive was called"
            report = service.verify(sid)
            damage = [f for f in report.findings if f.kind not in ("torn_tail", "conflict_copy")]
            assert not damage and len(report.heads) <= 1, f"{sid}: {damage} heads {report.heads}"
            self.resumable(service, session)

    def resumable(self, service: LocalSessionService, session: Session) -> None:
        """``find_resumable`` finds an acknowledged session in its directory, unless it may be archived."""
        found = service.find_resumable(session.directory, None, 3600)
        assert found is None or found.id == session.id, f"{session.directory}: found {found}"
        if not self.acknowledged(session):
            return
        assert self.snapshot.file(session.log) is not None, f"{session.id}: an acknowledged session was lost"
        if found is not None or any(call.began(self.cut) for call in session.archived):
            return
        raise AssertionError(f"{session.id}: not resumable from {session.directory}")

    def recovery(self, service: LocalSessionService) -> None:
        """Each acknowledged session takes one more event, and a torn tail it had ends up in trash/."""
        for session in self.sessions:
            if not self.acknowledged(session):
                continue
            sid = session.id
            log = self.snapshot.file(session.log) or b""
            torn = log[log.rfind(b"\n") + 1 :]
            stored = service.get_session(sid)
            assert stored is not None
            resumed = SessionManager.resume(service, stored)
            before = _contents(resumed.events)
            resumed.manager.persist_events([*resumed.events, UserMessage(AFTER)])
            after = [msgspec.json.decode(e.event_data)["content"] for e in service.load_events(sid)]
            assert after == [*before, AFTER], f"{sid}: after one more persist {after}"
            report = service.verify(sid)
            assert not report.findings, f"{sid}: after one more persist, verify finds {report.findings}"
            if torn:
                kept = {p.read_bytes() for p in service.trash_dir.iterdir()} if service.trash_dir.exists() else set()
                assert torn in kept, f"{sid}: the torn tail {torn[:40]!r} was cut off but is not in trash/"
        fresh = SessionManager.create_new(service, "/after", None)
        fresh.persist_events([UserMessage(AFTER)])
        created = service.get_session(fresh.session_id)
        assert created is not None and created.event_count == 1


def _translate_inodes(index: Path, inos: dict[int, int]) -> None:
    """Give the index's saved inode numbers the rebuilt files' numbers (a real power cut keeps them)."""
    try:
        data = index.read_bytes()
    except FileNotFoundError:
        return
    index.write_bytes(re.sub(rb'"ino":(\d+)', lambda m: b'"ino":%d' % inos.get(int(m[1]), int(m[1])), data))


# -- a bug the suite found, pinned down ---------------------------------------------------------------


def torn_index_row_hides_a_session() -> bool:
    """Whether a session whose one index row a power cut tore is missed on restart (fixed: such a row is no row).

    The state is the ``ext4`` model's ``torn`` state after one persist: the log was
    synced, the index row appended after it was not, and half of it reached the disk.
    """
    base = Path(tempfile.mkdtemp(prefix="powercut-known-"))
    try:
        root = base / STORE
        service = LocalSessionService.open(root, durability="fsync")
        manager = SessionManager.create_new(service, "/project", None)
        manager.persist_events([UserMessage("hello")])  # acknowledged; the service is then lost with the power
        index = root / "index.jsonl"
        row = index.read_bytes()
        assert row.count(b"\n") == 1 and b'"directory":"/project"' in row[: len(row) // 2]
        index.write_bytes(row[: len(row) // 2])
        # What an application does first when the power is back (listing first would save the row again).
        after = LocalSessionService.open(root, durability="fsync")
        found = after.find_resumable("/project", None, 3600)
        assert [s.id for s in after.list_sessions()] == [manager.session_id]  # the session is there
        return found is None
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- running it -----------------------------------------------------------------------------------------


@dataclass
class Outcome:
    ops: list[Op]
    states: Counter[str] = field(default_factory=Counter)
    """Crash states per model (every cut point, every variant)."""
    checked: Counter[str] = field(default_factory=Counter)
    """Distinct crash states per model (same files, same acknowledgements), each rebuilt and checked."""
    failures: list[str] = field(default_factory=list)
    work: Counter[str] = field(default_factory=Counter)


def _scratch() -> Path:
    """A folder for rebuilt states: in memory where there is one (they are written and thrown away by the thousand)."""
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix="powercut-", dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else None))


def run_workload(steps: list[Step], seed: int) -> Outcome:
    """Run ``steps`` under the recorder, then check every crash state of every model."""
    base = Path(tempfile.mkdtemp(prefix="powercut-run-"))
    scratch = _scratch()
    try:
        recorder = Recorder(base)
        with (
            warnings.catch_warnings(),
            recorder.installed(),
            mock.patch.object(sessions.index, "_TAIL_MIN", 1024),  # compact the index now and then
        ):
            warnings.simplefilter("ignore", DamagedLogWarning)  # resuming past a torn tail warns
            work = Workload(base, recorder)
            for step in steps:
                work.run(step)
        work.service.close()
        work.tally["index compactions"] = sum(
            op.kind == "rename" and op.target == f"{STORE}/index.jsonl" for op in recorder.ops
        )
        outcome = Outcome(recorder.ops, work=work.tally)
        results: dict[tuple[Snapshot, tuple[int, int]], str | None] = {}
        seen: dict[str, set[tuple[Snapshot, tuple[int, int]]]] = {model: set() for model in MODELS}
        for n, state in enumerate(crash_states(recorder.ops, seed=seed)):
            outcome.states[state.model] += 1
            key = (state.snapshot, work.acknowledged(state.cut))
            if key not in results:
                folder = scratch / str(n)
                folder.mkdir()
                try:
                    check_crash_state(state, work, folder)
                    results[key] = None
                except AssertionError as exc:
                    results[key] = str(exc).splitlines()[0]
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
            if key in seen[state.model]:
                continue
            seen[state.model].add(key)
            outcome.checked[state.model] += 1
            problem = results[key]
            if problem is not None:
                after = recorder.ops[state.cut - 1] if state.cut else "nothing"
                outcome.failures.append(
                    f"{state.model}/{state.variant}, power cut after op {state.cut} of {len(recorder.ops)} "
                    f"({after}): {problem}"
                )
        return outcome
    finally:
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


def check_workload(steps: list[Step], seed: int) -> None:
    outcome = run_workload(steps, seed)
    TALLY["workloads"] += 1
    TALLY["operations recorded"] += len(outcome.ops)
    TALLY["crash points"] += len(outcome.ops) + 1
    TALLY.update(outcome.work)
    for model in MODELS:
        TALLY[f"{model}: crash states"] += outcome.states[model]
        TALLY[f"{model}: distinct states checked"] += outcome.checked[model]
        TALLY[f"{model}: failures"] += sum(f.startswith(f"{model}/") for f in outcome.failures)
    for kind in ("create", "write", "fsync", "rename", "unlink", "truncate", "mkdir"):
        TALLY[f"ops: {kind}"] += sum(op.kind == kind for op in outcome.ops)
    assert not outcome.failures, f"workload {steps} (seed {seed}):\n" + "\n".join(outcome.failures[:20])


def run_suite(examples: int, max_steps: int) -> None:
    """The tour, then ``examples`` random workloads of 6 to ``max_steps`` steps; prints the figures."""
    TALLY.clear()
    started = time.monotonic()
    check_workload(TOUR, seed=0)

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(steps=st.lists(step_st, min_size=6, max_size=max_steps), seed=st.integers(0, 2**16))
    def random_workloads(steps: list[Step], seed: int) -> None:
        check_workload(steps, seed)

    random_workloads()
    print(f"\npower loss ({time.monotonic() - started:.1f} s):")
    for name, count in sorted(TALLY.items()):
        print(f"  {name}: {count}")


# -- the tests ---------------------------------------------------------------------------------------------


def test_the_models_on_a_small_trace() -> None:
    """What each model keeps of a file written and synced, written again, then renamed without syncing its folder."""
    ops = [
        Op("mkdir", path="d", ino=1),
        Op("fsync", ino=0),
        Op("create", path="d/a", ino=2),
        Op("write", ino=2, offset=0, data=b"hello\n"),
        Op("fsync", ino=2),
        Op("fsync", ino=1),
        Op("write", ino=2, offset=6, data=b"world\n"),
        Op("rename", path="d/a", target="d/b"),
    ]
    at_end = {(s.model, s.variant): s.snapshot for s in crash_states(ops) if s.cut == len(ops)}
    assert at_end["posix", "synced"].files == (("d/a", b"hello\n"),)  # the rename was never synced
    assert at_end["ext4", "kept"].files == (("d/b", b"hello\nworld\n"),)  # metadata persists in order
    assert at_end["ext4", "lost"].files == (("d/b", b"hello\n"),)
    ((name, torn),) = at_end["ext4", "torn"].files
    assert name == "d/b" and b"hello\n" < torn < b"hello\nworld\n"
    before_dir_sync = {(s.model, s.variant): s.snapshot for s in crash_states(ops) if s.cut == 5}
    assert before_dir_sync["posix", "synced"].files == ()  # d/a was made, but d not synced since
    assert before_dir_sync["posix", "synced"].dirs == ("d",)


@pytest.mark.parametrize(
    ("module", "name", "models"),
    [
        (eventlog.logfile, "sync_file", {"posix", "ext4"}),  # a log's fsync after a write
        (eventlog.logfile, "sync_dir", {"posix"}),  # sessions/ after a log is created
        (eventlog.trash, "sync_file", {"posix", "ext4"}),  # a torn tail's copy in trash/
        (eventlog.trash, "sync_dir", {"posix"}),  # trash/ after a copy lands in it
        (eventlog.durability, "sync_dir", {"posix"}),  # new folders; a merged log's rename
        (eventlog.durability, "sync_file", {"posix", "ext4"}),  # a merged log's data before its rename
    ],
)
def test_a_missing_sync_is_caught(module: object, name: str, models: set[str]) -> None:
    """The suite is not blind: take one sync out of the library and the tour fails under the models it matters to."""
    with mock.patch.object(module, name, lambda *args: None):
        outcome = run_workload(TOUR, seed=0)
    assert {f.split("/")[0] for f in outcome.failures} == models


def test_find_resumable_after_a_torn_index_row() -> None:
    """Found by this suite: after a power cut tore its only index row, a session was not found on restart."""
    assert not torn_index_row_hides_a_session()


@pytest.mark.slow
def test_power_loss_quick() -> None:
    """The tour and ten random workloads, every crash state of each: part of ``make test``."""
    run_suite(examples=10, max_steps=16)
    assert TALLY["ops: rename"] and TALLY["ops: truncate"] and TALLY["ops: mkdir"]
    assert TALLY["index compactions"] and TALLY["torn tails laid down"] and TALLY["conflict copies merged"]


@pytest.mark.stress
def test_power_loss_stress() -> None:
    run_suite(examples=int(os.environ.get("RELIABILITY_POWER_WORKLOADS", "500")), max_steps=30)
