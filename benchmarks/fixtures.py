"""Large stores, built once and cached outside the checkout, then copied for each run.

A 1 GiB log and stores of 100,000 sessions take too long to make through the
library on every run, so their logs are written straight in the documented
format (docs/FORMAT.md: a header line ``"k":"log"``, then ``"k":"event"``
and ``"k":"fact"`` lines), with the library's own event payloads
(:func:`sessions.serialize_event`). The SQLite twin of a store of many
sessions holds the same sessions, ids and events, written through the
reference peer's service.

A cached fixture is only the logs (and the SQLite database): no index. Each run
copies it into its scratch folder and lets the code under test build its own
index there (:func:`build_index`), so two versions of the library never share
an index file, and a run's writes never reach the cache. Fixtures are built in
a temporary folder and renamed into place, so an interrupted build or two runs
building at once leave no half-made fixture.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec

from benchmarks.peers.sqlite_ref import SQLiteSessionService
from benchmarks.workloads import _code, _prose, metadata_blobs
from sessions import (
    Compaction,
    LocalSessionService,
    StoredEvent,
    Text,
    ToolCall,
    ToolResult,
    UserMessage,
    serialize_event,
)

__all__ = [
    "DEFAULT_CACHE",
    "BigLog",
    "ChatLog",
    "ManySessions",
    "big_log",
    "build_index",
    "chat_log",
    "copy_store",
    "many_sessions",
    "uuid7",
]

DEFAULT_CACHE: Final = Path(os.environ.get("JSONL_SESSIONS_BENCH_CACHE", "/tmp/jsonl-sessions-bench"))
FIXTURE_VERSION: Final = 1
"""Bumped whenever what a fixture holds changes, so an old cache is not reused."""
FORMAT_VERSION: Final = 1
"""The log format version written in headers (docs/FORMAT.md)."""


class _Line(msgspec.Struct, omit_defaults=True):
    """One log line, fields as docs/FORMAT.md names them."""

    k: str
    id: str
    ts: str
    parent: str | None = None
    inv: str | None = None
    type: str | None = None
    key: str | None = None
    v: int | None = None
    data: msgspec.Raw = msgspec.Raw(b"null")


_encoder: Final = msgspec.json.Encoder()


def uuid7(rng: random.Random, unix_ms: int) -> str:
    """A UUIDv7 string for the millisecond ``unix_ms`` (random bits from ``rng``)."""
    value = (unix_ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rng.getrandbits(12) << 64 | 0b10 << 62 | rng.getrandbits(62)
    return str(uuid.UUID(int=value))


class _Clock:
    """RFC 3339 UTC timestamps with microseconds, formatted fast for increasing times."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def ts(self, unix_us: int) -> str:
        second, micro = divmod(unix_us, 1_000_000)
        if second != self._second:
            self._second = second
            self._prefix = dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return f"{self._prefix}.{micro:06d}Z"


def _header(session_id: str, ts: str, directory: str | None, git_root: str | None) -> _Line:
    data = _encoder.encode({"directory": directory, "git_root": git_root})
    return _Line(k="log", id=session_id, ts=ts, v=FORMAT_VERSION, data=msgspec.Raw(data))


def _fact(fact_id: str, ts: str, name: str, value: object, key: str | None = None) -> _Line:
    return _Line(k="fact", id=fact_id, ts=ts, type=name, key=key, data=msgspec.Raw(_encoder.encode(value)))


def _encode_into(buf: bytearray, line: _Line) -> None:
    _encoder.encode_into(line, buf, len(buf))
    buf += b"\n"


def _cached(folder: Path, build: Callable[[Path], dict[str, object]]) -> dict[str, object]:
    """The fixture in ``folder``, built by ``build(tmp)`` into a temporary folder first if missing.

    :returns: what ``build`` returned (saved as ``fixture.json``).
    """
    meta = folder / "fixture.json"
    if not meta.exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.parent / f".{folder.name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            started = time.perf_counter()
            built = build(tmp)
            built["build_s"] = round(time.perf_counter() - started, 1)
            (tmp / "fixture.json").write_text(json.dumps(built))
            try:
                tmp.rename(folder)
            except OSError:  # another run built it meanwhile (or left a broken one: remove it by hand)
                if not meta.exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    loaded = json.loads(meta.read_text())
    assert isinstance(loaded, dict)
    return loaded


# -- one large log --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BigLog:
    """A store of one session whose log is about ``size`` bytes of small chat events."""

    store: Path
    """The cached store (only ``sessions/``): copy it, never open it."""
    session_id: str
    directory: str
    events: int
    size: int
    build_s: float


def big_log(cache: Path, target_bytes: int) -> BigLog:
    """The cached store of one log of at least ``target_bytes``, built if missing.

    Events alternate user messages and assistant texts of 700-1,000 characters
    (about 1 KB a line), in one chain, one invocation per 1,000 events; the
    server id and the two metadata blobs follow as facts.
    """
    folder = cache / f"biglog-v{FIXTURE_VERSION}-{target_bytes}"
    meta = _cached(folder, lambda tmp: _build_big_log(tmp, target_bytes))
    return BigLog(
        store=folder / "store",
        session_id=str(meta["session_id"]),
        directory=str(meta["directory"]),
        events=_int(meta["events"]),
        size=_int(meta["size"]),
        build_s=float(str(meta["build_s"])),
    )


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value


def _build_big_log(tmp: Path, target_bytes: int) -> dict[str, object]:
    rng = random.Random(9)
    pool: list[tuple[str, msgspec.Raw]] = []
    for i in range(64):
        content = _prose(rng, rng.randrange(700, 1000))
        event_type, payload = serialize_event(UserMessage(content) if i % 2 == 0 else Text(content))
        pool.append((event_type, msgspec.Raw(payload.encode())))
    estimate = target_bytes // 1050 + 1
    clock = _Clock()
    now_us = time.time_ns() // 1000
    start_us = now_us - estimate * 1000 - 60_000_000
    directory = "/home/user/big-project"
    session_id = uuid7(rng, start_us // 1000)
    sessions = tmp / "store" / "sessions"
    sessions.mkdir(parents=True)
    path = sessions / f"{session_id}.jsonl"
    buf = bytearray()
    _encode_into(buf, _header(session_id, clock.ts(start_us), directory, directory))
    written = 0
    events = 0
    parent: str | None = None
    inv = ""
    with open(path, "wb") as f:
        while written + len(buf) < target_bytes:
            us = start_us + (events + 1) * 1000
            if events % 1000 == 0:
                inv = uuid7(rng, us // 1000)
            event_id = uuid7(rng, us // 1000)
            event_type, data = pool[events % len(pool)]
            _encode_into(
                buf, _Line(k="event", id=event_id, ts=clock.ts(us), parent=parent, inv=inv, type=event_type, data=data)
            )
            parent = event_id
            events += 1
            if len(buf) >= 1 << 23:
                f.write(buf)
                written += len(buf)
                buf.clear()
        us = start_us + (events + 1) * 1000
        _encode_into(buf, _fact(uuid7(rng, us // 1000), clock.ts(us), "server_session_id", "srv-big"))
        for key, value in metadata_blobs(rng).items():
            us += 1
            _encode_into(buf, _fact(uuid7(rng, us // 1000), clock.ts(us), "metadata", value, key=key))
        f.write(buf)
        written += len(buf)
    # The folder's mtime in the past, as a store nobody wrote to for a while.
    past = (now_us - 60_000_000) * 1000
    os.utime(sessions, ns=(past, past))
    return {"session_id": session_id, "directory": directory, "events": events, "size": written}


# -- one agent session of N small events ----------------------------------------------------------


@dataclass(frozen=True)
class ChatLog:
    """A store of one session of ``events`` small agent events (about 290 bytes a line)."""

    store: Path
    """The cached store (only ``sessions/``): copy it, never open it."""
    session_id: str
    directory: str
    events: int
    size: int
    head_id: str
    """The id of the last event."""
    compaction_tail: int | None
    """Events from the newest :class:`~sessions.Compaction` to the end, it included (None: no compaction)."""
    build_s: float


def chat_log(cache: Path, events: int, compaction_tail: int | None = None) -> ChatLog:
    """The cached store of one session of ``events`` events, built if missing.

    Events cycle through turns of a user message, a tool call, its result and
    an assistant text, each of 10-100 characters (a log line of ~290 bytes,
    ~290 MB for a million events), in one chain, one invocation per 1,000
    events; the server id and two metadata blobs of a few KB follow as facts.
    With ``compaction_tail``, a :class:`~sessions.Compaction` (a summary of
    ~1,500 characters) replaces the event at each tenth of the log and the
    event ``compaction_tail`` events before the end (so a window from the
    newest compaction holds ``compaction_tail`` events).
    """
    folder = cache / f"chatlog-v{FIXTURE_VERSION}-{events}-c{compaction_tail or 0}"
    meta = _cached(folder, lambda tmp: _build_chat_log(tmp, events, compaction_tail))
    return ChatLog(
        store=folder / "store",
        session_id=str(meta["session_id"]),
        directory=str(meta["directory"]),
        events=_int(meta["events"]),
        size=_int(meta["size"]),
        head_id=str(meta["head_id"]),
        compaction_tail=compaction_tail,
        build_s=float(str(meta["build_s"])),
    )


def _chat_pool(rng: random.Random) -> list[tuple[str, msgspec.Raw]]:
    pool: list[tuple[str, msgspec.Raw]] = []
    for _ in range(16):
        tool_id = f"toolu_{rng.getrandbits(64):016x}"
        content = _prose(rng, rng.randrange(10, 50))
        turn = [
            UserMessage(_prose(rng, rng.randrange(20, 80))),
            ToolCall(tool_id, "read_file", {"path": f"src/pkg/module_{rng.randrange(100)}.py"}),
            ToolResult(tool_id, content, is_error=False, content_length=len(content)),
            Text(_prose(rng, rng.randrange(20, 100))),
        ]
        for event in turn:
            event_type, payload = serialize_event(event)
            pool.append((event_type, msgspec.Raw(payload.encode())))
    return pool


def _build_chat_log(tmp: Path, events: int, compaction_tail: int | None) -> dict[str, object]:
    rng = random.Random(events)
    pool = _chat_pool(rng)
    compactions: set[int] = set()
    compaction: tuple[str, msgspec.Raw] | None = None
    if compaction_tail is not None:
        if not 0 < compaction_tail <= events:
            raise ValueError(f"compaction_tail {compaction_tail} out of 1..{events}")
        step = max(1, events // 10)
        compactions = {*range(step, events - compaction_tail, step), events - compaction_tail}
        summary = Compaction(summary=_prose(rng, 1500), tokens_before=150_000)
        event_type, payload = serialize_event(summary)
        compaction = event_type, msgspec.Raw(payload.encode())
    clock = _Clock()
    now_us = time.time_ns() // 1000
    start_us = now_us - events * 1000 - 60_000_000
    directory = "/home/user/agent-project"
    session_id = uuid7(rng, start_us // 1000)
    sessions = tmp / "store" / "sessions"
    sessions.mkdir(parents=True)
    buf = bytearray()
    _encode_into(buf, _header(session_id, clock.ts(start_us), directory, directory))
    written = 0
    parent: str | None = None
    inv = ""
    with open(sessions / f"{session_id}.jsonl", "wb") as f:
        for n in range(events):
            us = start_us + (n + 1) * 1000
            if n % 1000 == 0:
                inv = uuid7(rng, us // 1000)
            event_id = uuid7(rng, us // 1000)
            event_type, data = compaction if compaction is not None and n in compactions else pool[n % len(pool)]
            _encode_into(
                buf, _Line(k="event", id=event_id, ts=clock.ts(us), parent=parent, inv=inv, type=event_type, data=data)
            )
            parent = event_id
            if len(buf) >= 1 << 23:
                f.write(buf)
                written += len(buf)
                buf.clear()
        us = start_us + (events + 1) * 1000
        _encode_into(buf, _fact(uuid7(rng, us // 1000), clock.ts(us), "server_session_id", "srv-chat"))
        for key, value in metadata_blobs(rng).items():
            us += 1
            _encode_into(buf, _fact(uuid7(rng, us // 1000), clock.ts(us), "metadata", value, key=key))
        f.write(buf)
        written += len(buf)
    past = (now_us - 60_000_000) * 1000
    os.utime(sessions, ns=(past, past))
    return {"session_id": session_id, "directory": directory, "events": events, "size": written, "head_id": parent}


# -- many sessions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManySessions:
    """A store of ``count`` small sessions, and its SQLite twin."""

    ours: Path
    """The cached store (only ``sessions/``): copy it, never open it."""
    sqlite: Path
    """The folder of the SQLite twin's ``sessions.db``: copy it, never open it."""
    count: int
    directories: int
    unarchived: list[str]
    """The ids of the sessions that are not archived."""
    build_s: float

    def directory(self, i: int) -> str:
        """The project directory of the ``i``-th session (also the git root of two sessions in three)."""
        return f"/home/user/project-{i % self.directories}"


def many_sessions(cache: Path, count: int, directories: int = 100) -> ManySessions:
    """The cached store of ``count`` sessions (and its SQLite twin), built if missing.

    Session ``i`` lives in ``/home/user/project-{i % directories}``, has that
    directory as its git root unless ``i % 3 == 0``, and is archived if
    ``i % 10 == 0``. Each holds four short events (a prompt, an answer, a tool
    call and its result: about 1 KB), a server id and two metadata values of
    about 200 bytes.
    """
    folder = cache / f"sessions-v{FIXTURE_VERSION}-{count}-{directories}"
    meta = _cached(folder, lambda tmp: _build_many(tmp, count, directories))
    ids = meta["ids"]
    assert isinstance(ids, list)
    return ManySessions(
        ours=folder / "ours",
        sqlite=folder / "sqlite",
        count=count,
        directories=directories,
        unarchived=[str(sid) for i, sid in enumerate(ids) if i % 10],
        build_s=float(str(meta["build_s"])),
    )


def _small_session(rng: random.Random) -> list[tuple[str, str]]:
    tool_id = f"toolu_{rng.getrandbits(64):016x}"
    content = _code(rng, rng.randrange(200, 500))
    events = [
        UserMessage(_prose(rng, rng.randrange(60, 200))),
        Text(_prose(rng, rng.randrange(150, 400))),
        ToolCall(tool_id, "read_file", {"path": f"src/pkg/module_{rng.randrange(100)}.py"}),
        ToolResult(tool_id, content, is_error=False, content_length=len(content)),
    ]
    return [serialize_event(e) for e in events]


def _small_metadata(rng: random.Random) -> dict[str, str]:
    tracker = {f"src/pkg/module_{rng.randrange(100)}.py": rng.randrange(1 << 31) for _ in range(6)}
    permissions = {"allowed": [f"src/pkg/module_{rng.randrange(100)}.py" for _ in range(4)], "mode": "ask"}
    return {
        "file_read_tracker": msgspec.json.encode(tracker).decode(),
        "edit_permissions": msgspec.json.encode(permissions).decode(),
    }


def _build_many(tmp: Path, count: int, directories: int) -> dict[str, object]:
    rng = random.Random(count)
    pool = [_small_session(rng) for _ in range(32)]
    metadata = [_small_metadata(rng) for _ in range(32)]
    clock = _Clock()
    now_us = time.time_ns() // 1000
    start_us = now_us - count * 1000 - 60_000_000
    sessions = tmp / "ours" / "sessions"
    sessions.mkdir(parents=True)
    (tmp / "sqlite").mkdir()
    twin = SQLiteSessionService(tmp / "sqlite" / "sessions.db", durability="flush", per_event=False)
    ids = []
    buf = bytearray()
    for i in range(count):
        us = start_us + i * 1000
        ms = us // 1000
        session_id = uuid7(rng, ms)
        ids.append(session_id)
        directory = f"/home/user/project-{i % directories}"
        git_root = directory if i % 3 else None
        inv = uuid7(rng, ms)
        buf.clear()
        _encode_into(buf, _header(session_id, clock.ts(us), directory, git_root))
        stored = []
        parent: str | None = None
        for n, (event_type, data) in enumerate(pool[i % len(pool)], start=1):
            event_id = uuid7(rng, ms)
            line = _Line(
                k="event",
                id=event_id,
                ts=clock.ts(us + n * 10),
                parent=parent,
                inv=inv,
                type=event_type,
                data=msgspec.Raw(data.encode()),
            )
            _encode_into(buf, line)
            stored.append(
                StoredEvent(
                    id=event_id,
                    session_id=session_id,
                    parent_id=parent,
                    invocation_id=inv,
                    event_type=event_type,
                    event_data=data,
                    created_at=dt.datetime.fromtimestamp((us + n * 10) / 1e6, dt.UTC),
                )
            )
            parent = event_id
        server = f"srv-{i}"
        _encode_into(buf, _fact(uuid7(rng, ms), clock.ts(us + 100), "server_session_id", server))
        values = metadata[i % len(metadata)]
        for n, (key, value) in enumerate(values.items()):
            _encode_into(buf, _fact(uuid7(rng, ms), clock.ts(us + 110 + n), "metadata", value, key=key))
        archived = i % 10 == 0
        if archived:
            _encode_into(buf, _fact(uuid7(rng, ms), clock.ts(us + 200), "archived", True))
        fd = os.open(sessions / f"{session_id}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, buf)
        finally:
            os.close(fd)
        twin.create_session(session_id, directory, git_root)
        twin.append_events(session_id, stored)
        twin.update_server_session_id(session_id, server)
        for key, value in values.items():
            twin.set_metadata(session_id, key, value)
        if archived:
            twin.archive(session_id)
    twin.close()
    past = (now_us - 60_000_000) * 1000
    os.utime(sessions, ns=(past, past))
    return {"ids": ids}


# -- using a fixture ------------------------------------------------------------------------------


def copy_store(source: Path, target: Path) -> None:
    """Copy a cached store (or SQLite folder) to ``target``, times kept, without any index or lock file.

    Index files are caches of one version of the library: the copy's own
    version rebuilds them (:func:`build_index`).
    """
    if shutil.which("cp"):
        subprocess.run(["cp", "-a", str(source), str(target)], check=True)
    else:
        shutil.copytree(source, target)
    for name in os.listdir(target):
        if name.startswith("index") or name == "locks":  # index.json, index-logs.json, index.jsonl, ...
            path = target / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def build_index(root: Path) -> float:
    """Let the library under test index the store at ``root`` once; the seconds it took.

    Waits first until the logs' folder is old enough for its listing to be
    trusted (changes within 2 s of a listing may not show in the folder's mtime).
    """
    age = time.time() - os.stat(root / "sessions").st_mtime
    if age < 2.1:
        time.sleep(2.1 - age)
    start = time.perf_counter()
    service = LocalSessionService.open(root)
    service.list_sessions(include_archived=True)
    service.close()
    return time.perf_counter() - start
