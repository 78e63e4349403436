"""Suite 4: hostile files. Hypothesis writes damaged logs and index files; the library must cope.

Loading never raises anything but the library's documented errors, never
deletes or rewrites a byte of a damaged line, and ``verify`` reports each
problem at its byte offset. Each log is built from labelled pieces, so the
test knows independently where every problem is.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlog import FORMAT_VERSION, KIND_EVENT, KIND_FACT, KIND_HEADER, Record, encode_records, new_id
from sessions import (
    DamagedLogWarning,
    LocalSessionService,
    SessionManager,
    UserMessage,
)

TALLY: Final[Counter[str]] = Counter()
TS: Final = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def header(session_id: str) -> bytes:
    data = msgspec.Raw(b'{"directory":"/hostile","git_root":null}')
    return encode_records([Record(k=KIND_HEADER, id=session_id, ts=TS, v=FORMAT_VERSION, data=data)])


def event_line(event_id: str, parent: str | None, content: str = "x") -> bytes:
    data = msgspec.Raw(msgspec.json.encode({"content": content}))
    record = Record(k=KIND_EVENT, id=event_id, ts=TS, parent=parent, inv="inv", type="user_message", data=data)
    return encode_records([record])


# Lines that are not records, each ending without its newline (the builder adds it).
_nested = st.integers(200, 20_000).map(lambda n: b"[" * n + b"]" * n)
_json_wrong_shape = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["k", "id", "x"]), inner, max_size=3),
    max_leaves=8,
).map(msgspec.json.encode)
_garbage = st.one_of(
    st.binary(min_size=1, max_size=200),
    st.integers(1, 300).map(lambda n: b"\x00" * n),
    st.binary(max_size=20).map(lambda b: b'{"k":"event","id":"\xff\xfe' + b + b'","ts":"2026-01-01T00:00:00Z"}'),
    st.binary(min_size=1, max_size=30).map(lambda b: b"\xc3" + b),
    _json_wrong_shape,
    _nested,
    st.integers(100_000, 400_000).map(lambda n: b"z" * n),
    st.just(b'{"k":"event","id":"a","ts":"not a time"}'),
).filter(lambda line: b"\n" not in line and line.strip() != b"")


_not_utf8 = st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xc0\xaf"])


@dataclass
class Built:
    data: bytes
    damaged: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    gaps: list[int] = field(default_factory=list)
    torn: int | None = None
    event_ids: list[str] = field(default_factory=list)
    header_kind: str = "good"


@st.composite
def hostile_logs(draw: st.DrawFn) -> Built:
    """A log of good events mixed with garbage, duplicates, dangling parents, odd facts and maybe a torn tail.

    Offsets are relative to the end of the header line, which :func:`check_log` writes.
    """
    built = Built(b"", header_kind=draw(st.sampled_from(["good", "good", "garbage", "wrong_data", "future", "none"])))
    previous: str | None = None
    lines: dict[str, bytes] = {}
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(
            st.sampled_from(["event", "event", "garbage", "truncated", "duplicate", "dangling", "bad_payload", "fact"])
        )
        offset = len(built.data)
        if kind == "event" or (kind == "duplicate" and not lines):
            event_id = new_id()
            line = event_line(event_id, previous, draw(st.text(max_size=20)))
            lines[event_id] = line
            built.event_ids.append(event_id)
            previous = event_id
        elif kind == "duplicate":
            line = draw(st.sampled_from(sorted(lines.values())))
            built.duplicates.append(offset)
        elif kind == "dangling":
            event_id = new_id()
            line = event_line(event_id, new_id())
            lines[event_id] = line
            built.event_ids.append(event_id)
            built.gaps.append(offset)
            previous = event_id
        elif kind == "fact":
            # A well-formed fact whose value has a shape the service does not expect.
            name = draw(st.sampled_from(["archived", "server_session_id", "metadata", "from-the-future"]))
            value = draw(_json_wrong_shape | st.text(min_size=600, max_size=700).map(msgspec.json.encode))
            key = draw(st.sampled_from([None, "", "k"]))
            record = Record(k=KIND_FACT, id=new_id(), ts=TS, type=name, key=key, data=msgspec.Raw(value))
            line = encode_records([record])
        elif kind == "bad_payload":
            # A well-formed record whose payload holds bytes that are not UTF-8.
            line = event_line(new_id(), previous, "@").replace(b'"@"', b'"' + draw(_not_utf8) + b'"')
            built.damaged.append(offset)
        elif kind == "truncated":
            whole = event_line(new_id(), previous)
            line = whole[: draw(st.integers(1, len(whole) - 2))] + b"\n"
            built.damaged.append(offset)
        else:
            line = draw(_garbage) + b"\n"
            built.damaged.append(offset)
        built.data += line
    if draw(st.booleans()):
        whole = event_line(new_id(), previous)
        built.torn = len(built.data)
        built.data += whole[: draw(st.integers(1, len(whole) - 1))]
    return built


def exercise_reads(root: Path, session_id: str) -> list[str]:
    """Every read-side entry point; returns the ids load_events gave."""
    service = LocalSessionService.open(root)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stored = service.get_session(session_id)
        assert stored is not None
        events = service.load_events(session_id)
        SessionManager.resume(service, stored)
        for key in ("", "k"):
            service.get_metadata(session_id, key)
        assert [s.id for s in service.list_sessions(include_archived=True)] == [session_id]
        service.find_resumable("/hostile", None, 10**9)
        service.close()
    assert all(issubclass(w.category, DamagedLogWarning) for w in caught), [str(w.message) for w in caught]
    return [e.id for e in events]


def header_line(session_id: str, kind: str, garbage: bytes) -> tuple[bytes, bool]:
    """The first line for ``kind`` of header, and whether it is a damaged line."""
    if kind == "garbage":
        return garbage + b"\n", True
    if kind == "none":
        return b"", False
    if kind == "wrong_data":
        data = msgspec.Raw(b'[1,{"directory":5,"git_root":["x"]}]')
        return encode_records([Record(k=KIND_HEADER, id=session_id, ts=TS, v=FORMAT_VERSION, data=data)]), False
    if kind == "future":
        return encode_records([Record(k=KIND_HEADER, id=session_id, ts=TS, v=FORMAT_VERSION + 7)]), False
    return header(session_id), False


def check_log(root: Path, built: Built, garbage_header: bytes = b"\x00garbage") -> None:
    session_id = new_id()
    sessions = root / "sessions"
    sessions.mkdir(parents=True, exist_ok=True)
    first, first_damaged = header_line(session_id, built.header_kind, garbage_header)
    shift = len(first)
    built.data = first + built.data
    built.damaged = [0] * first_damaged + [o + shift for o in built.damaged]
    built.duplicates = [o + shift for o in built.duplicates]
    built.gaps = [o + shift for o in built.gaps]
    built.torn = built.torn + shift if built.torn is not None else None
    path = sessions / f"{session_id}.jsonl"
    path.write_bytes(built.data)
    os.chmod(path, 0o600)

    loaded = exercise_reads(root, session_id)
    assert path.read_bytes() == built.data, "a read changed the log"
    assert set(loaded) <= set(built.event_ids)

    report = LocalSessionService.open(root).verify(session_id)
    by_kind: dict[str, list[int]] = {}
    for finding in report.findings:
        by_kind.setdefault(finding.kind, []).append(finding.offset)
    assert by_kind.get("damaged", []) == built.damaged
    assert by_kind.get("torn_tail", []) == ([built.torn] if built.torn is not None else [])
    assert by_kind.get("duplicate", []) == built.duplicates
    assert by_kind.get("gap", []) == built.gaps
    assert report.ok == (not built.damaged and built.torn is None)

    # An append keeps every damaged line byte for byte; only a torn tail moves, to the trash.
    service = LocalSessionService.open(root)
    stored = service.get_session(session_id)
    assert stored is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedLogWarning)
        resumed = SessionManager.resume(service, stored)
        resumed.manager.persist_events([*resumed.events, UserMessage("after")])
    kept = built.data[: built.torn] if built.torn is not None else built.data
    after = path.read_bytes()
    assert after.startswith(kept), "an append rewrote stored bytes"
    if built.torn is not None:
        assert [p.read_bytes() for p in (root / "trash").iterdir()] == [built.data[built.torn :]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedLogWarning)
        last = LocalSessionService.open(root).load_events(session_id)[-1]
    assert msgspec.json.decode(last.event_data) == {"content": "after"}
    TALLY["logs"] += 1
    TALLY["bytes"] += len(built.data)
    TALLY["damaged lines"] += len(built.damaged)
    TALLY["torn tails"] += built.torn is not None


def fuzz_logs(examples: int) -> None:
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(built=hostile_logs(), garbage_header=_garbage)
    def scenario(built: Built, garbage_header: bytes) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            check_log(Path(tmp), built, garbage_header)

    scenario()


def test_hostile_logs_quick() -> None:
    fuzz_logs(150)


@pytest.mark.stress
def test_hostile_logs_stress() -> None:
    TALLY.clear()
    fuzz_logs(int(os.environ.get("RELIABILITY_FUZZ_EXAMPLES", "3000")))
    print(f"\nhostile logs: {dict(TALLY)}")


def _store(root: Path) -> list[tuple[str, int, str | None, bool]]:
    """Three sessions, one archived; returns what listing them must show."""
    service = LocalSessionService.open(root)
    for n in range(3):
        manager = SessionManager.create_new(service, "/hostile", None)
        manager.persist_events([UserMessage(f"{n}:{i}") for i in range(n + 1)])
        if n == 2:
            manager.archive()
    service.close()
    return _listing(LocalSessionService.open(root))


def _listing(service: LocalSessionService) -> list[tuple[str, int, str | None, bool]]:
    return [
        (s.id, s.event_count, s.head_id, s.archived_at is not None)
        for s in service.list_sessions(include_archived=True)
    ]


@st.composite
def hostile_indexes(draw: st.DrawFn, real: bytes) -> bytes:
    """Index files that are garbage, the wrong shape, or valid lines that lie about the logs."""
    kind = draw(st.sampled_from(["garbage", "json", "nested", "utf8", "lies", "paths", "torn"]))
    if kind == "garbage":
        return draw(st.binary(max_size=2000))
    if kind == "json":
        return draw(_json_wrong_shape) + b"\n"
    if kind == "nested":
        return b'{"session":' + draw(_nested) + b"}\n"
    if kind == "utf8":
        return real.replace(b"/hostile", b"/\xff\xfe", 1)
    if kind == "torn":
        return real[: draw(st.integers(0, len(real)))]
    rows = [msgspec.json.decode(line) for line in real.splitlines()]
    if kind == "paths":
        for bad in ("../../etc/passwd", "/abs", "a/b", "x\x00y", "\uff46" * 8):
            rows.append({**rows[0], "session": {**rows[0]["session"], "id": bad}})
    else:
        for row in rows:
            row["session"]["event_count"] = draw(st.integers(-5, 10**6))
            row["session"]["head_id"] = draw(st.text(max_size=40) | st.none())
            row["session"]["archived_at"] = draw(st.none() | st.just("2020-01-01T00:00:00Z"))
            row["log"]["events"] = draw(st.integers(-5, 10**6))
            # A stale index: it covers a different number of bytes than the log now holds.
            size = draw(st.integers(0, 10**6))
            row["log"]["size"] = size if size != row["log"]["size"] else size + 1
    return b"".join(msgspec.json.encode(row) + b"\n" for row in rows)


def fuzz_indexes(examples: int) -> None:
    """Fuzz ``index.jsonl``: every answer must still come from the logs, which stay untouched."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        expected = _store(root)
        hostile = root / "index.jsonl"
        real = hostile.read_bytes()
        logs = {p.name: p.read_bytes() for p in (root / "sessions").iterdir()}

        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
        @given(data=hostile_indexes(real))
        def scenario(data: bytes) -> None:
            hostile.write_bytes(data)
            service = LocalSessionService.open(root)
            assert _listing(service) == expected
            found = service.find_resumable("/hostile", None, 10**9)
            assert found is not None and found.id == max(e[0] for e in expected if not e[3])
            for session_id, count, head, _ in expected:
                stored = service.get_session(session_id)
                assert stored is not None and (stored.event_count, stored.head_id) == (count, head)
            service.close()
            assert {p.name: p.read_bytes() for p in (root / "sessions").iterdir()} == logs
            assert sorted(os.listdir(root)) == ["index.jsonl", "locks", "sessions"]
            TALLY["indexes"] += 1

        scenario()


def test_hostile_indexes_quick() -> None:
    fuzz_indexes(100)


@pytest.mark.stress
def test_hostile_indexes_stress() -> None:
    TALLY.clear()
    fuzz_indexes(int(os.environ.get("RELIABILITY_FUZZ_EXAMPLES", "3000")))
    print(f"\nhostile indexes: {dict(TALLY)}")


def test_a_50_mb_line_is_skipped_and_reported(tmp_path: Path) -> None:
    session_id = new_id()
    (tmp_path / "sessions").mkdir()
    first, second = new_id(), new_id()
    huge = b'{"k":"event","data":"' + b"a" * (50 << 20)  # never closed: one 50 MB damaged line
    data = header(session_id) + event_line(first, None) + huge + b"\n" + event_line(second, first)
    path = tmp_path / "sessions" / f"{session_id}.jsonl"
    path.write_bytes(data)
    assert exercise_reads(tmp_path, session_id) == [first, second]
    report = LocalSessionService.open(tmp_path).verify(session_id)
    huge_at = len(header(session_id)) + len(event_line(first, None))
    assert [(f.offset, f.kind) for f in report.findings] == [(huge_at, "damaged")]
    service = LocalSessionService.open(tmp_path)
    stored = service.get_session(session_id)
    assert stored is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedLogWarning)
        resumed = SessionManager.resume(service, stored)
        resumed.manager.persist_events([*resumed.events, UserMessage("after")])
    assert path.read_bytes().startswith(data)


@pytest.mark.parametrize("value", [b"null", b"[]", b"5", b'{"a":1}', b'"' + b"x" * 600 + b'"'])
def test_metadata_of_any_json_shape_reads_as_that_value(tmp_path: Path, value: bytes) -> None:
    """A metadata fact written by hand (or another writer) with any JSON value reads back as that value."""
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/p", None)
    manager.persist_events([UserMessage("x")])
    fact = Record(k=KIND_FACT, id=new_id(), ts=TS, type="metadata", key="k", data=msgspec.Raw(value))
    with open(service.log_path(manager.session_id), "ab") as f:
        f.write(encode_records([fact]))
    fresh = LocalSessionService.open(tmp_path)
    assert fresh.get_metadata(manager.session_id, "k") == msgspec.json.decode(value)
    assert fresh.metadata(manager.session_id) == {"k": msgspec.json.decode(value)}
