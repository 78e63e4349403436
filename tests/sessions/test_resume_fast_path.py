"""The one-pass resume (``load_conversation``) answers exactly as ``load_events`` typed one by one.

The fast path streams clean, linear logs a chunk at a time; every other log
must fall back to the tolerant reader, with the same events and warnings.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import warnings
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eventlog.reader
from eventlog import KIND_EVENT, Record, encode_records, new_id, stream_linear_events
from sessions import (
    DamagedLogWarning,
    LocalSessionService,
    SessionManager,
    SessionNotFound,
    Text,
    ToolCall,
    ToolResult,
    UnknownEvent,
    UserMessage,
    deserialize_event,
)
from sessions.events import ConversationEvent


def _conversation(n: int) -> list[ConversationEvent]:
    events: list[ConversationEvent] = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            events.append(UserMessage(f"question {i} " + "é" * (i % 7)))
        elif kind == 1:
            events.append(Text(f"answer {i}\n" * (1 + i % 5)))
        elif kind == 2:
            events.append(ToolCall(f"t{i}", "read_file", {"path": f"f{i}.py", "n": [i, None, True]}))
        else:
            events.append(ToolResult(f"t{i - 1}", "x" * (i * 37 % 3000), is_error=i % 2 == 0))
    return events


def _typed_load_events(service: LocalSessionService, session_id: str) -> tuple[list[object], str | None, object]:
    stored = service.load_events(session_id)
    events: list[object] = [deserialize_event(e.event_type, e.event_data) for e in stored]
    return events, stored[-1].id if stored else None, stored[-1].created_at if stored else None


@pytest.fixture
def service(tmp_path: Path) -> LocalSessionService:
    return LocalSessionService.open(tmp_path / "store", durability="flush")


def _session(service: LocalSessionService, events: list[ConversationEvent]) -> str:
    manager = SessionManager.create_new(service, "/p", None)
    for end in range(0, len(events) + 7, 7):
        manager.persist_events(events[:end])
    manager.set_metadata("tracker", "{}")
    return manager.session_id


@pytest.mark.parametrize("chunk", [64, 1000, 1 << 18])
def test_linear_log_matches_load_events_across_chunk_sizes(
    service: LocalSessionService, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    events = _conversation(60)
    session_id = _session(service, events)
    # Chunks smaller than one line, and lines straddling chunk ends, must not change the answer.
    monkeypatch.setattr(eventlog.reader, "CHUNK_BYTES", chunk)
    conversation = service.load_conversation(session_id)
    assert conversation.events == events
    expected = _typed_load_events(service, session_id)
    assert (conversation.events, conversation.head_id, conversation.last_event_at) == expected
    assert stream_linear_events(service.log_path(session_id), lambda r: r.id) is not None


def test_empty_session_has_no_head(service: LocalSessionService) -> None:
    session_id = new_id()
    service.create_session(session_id, "/p", None)
    assert tuple(service.load_conversation(session_id)) == ([], None, None)


def test_missing_session_raises_not_found(service: LocalSessionService) -> None:
    with pytest.raises(SessionNotFound):
        service.load_conversation(new_id())


def _append_raw(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def test_unknown_type_and_bad_payload_stay_unknown_events(service: LocalSessionService) -> None:
    session_id = _session(service, _conversation(3))
    head = service.get_session(session_id)
    assert head is not None and head.head_id is not None
    newer = Record(
        k=KIND_EVENT,
        id=new_id(),
        ts=dt.datetime.now(dt.UTC),
        parent=head.head_id,
        type="hologram",
        data=msgspec.Raw(b'{"beam":1}'),
    )
    bad = Record(
        k=KIND_EVENT,
        id=new_id(),
        ts=dt.datetime.now(dt.UTC),
        parent=newer.id,
        type="text",
        data=msgspec.Raw(b'{"content":5}'),
    )
    _append_raw(service.log_path(session_id), encode_records([newer, bad]))
    conversation = service.load_conversation(session_id)
    assert conversation.events[-2:] == [UnknownEvent("hologram", '{"beam":1}'), UnknownEvent("text", '{"content":5}')]
    assert (conversation.events, conversation.head_id, conversation.last_event_at) == _typed_load_events(
        service, session_id
    )


def test_damaged_line_falls_back_with_a_warning(service: LocalSessionService) -> None:
    events = _conversation(10)
    session_id = _session(service, events)
    path = service.log_path(session_id)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([*lines[:4], b'{"k":"event", broken\n', *lines[4:]]))
    assert stream_linear_events(path, lambda r: r) is None
    with pytest.warns(DamagedLogWarning, match=session_id):
        conversation = service.load_conversation(session_id)
    assert conversation.events == events
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedLogWarning)
        assert (conversation.events, conversation.head_id, conversation.last_event_at) == _typed_load_events(
            service, session_id
        )


def test_torn_tail_falls_back_with_a_warning(service: LocalSessionService) -> None:
    events = _conversation(9)
    session_id = _session(service, events)
    _append_raw(service.log_path(session_id), b'{"k":"event","id":"cut sho')
    assert stream_linear_events(service.log_path(session_id), lambda r: r) is None
    with pytest.warns(DamagedLogWarning):
        assert service.load_conversation(session_id).events == events


def test_fork_falls_back_to_the_active_branch(service: LocalSessionService) -> None:
    events = _conversation(6)
    session_id = _session(service, events)
    stored = service.load_events(session_id)
    # Two children of the third event: the deeper branch is the active one.
    branch = [stored[2].id]
    records = []
    for i in range(5):
        record = Record(
            k=KIND_EVENT,
            id=new_id(),
            ts=dt.datetime.now(dt.UTC),
            parent=branch[-1],
            type="text",
            data=msgspec.Raw(msgspec.json.encode(Text(f"other {i}"))),
        )
        branch.append(record.id)
        records.append(record)
    _append_raw(service.log_path(session_id), encode_records(records))
    assert stream_linear_events(service.log_path(session_id), lambda r: r) is None
    conversation = service.load_conversation(session_id)
    assert conversation.events == [*events[:3], *(Text(f"other {i}") for i in range(5))]
    assert conversation.head_id == branch[-1]
    assert (conversation.events, conversation.head_id, conversation.last_event_at) == _typed_load_events(
        service, session_id
    )


def test_resume_uses_it_and_can_continue(service: LocalSessionService) -> None:
    events = _conversation(25)
    session_id = _session(service, events)
    stored = service.get_session(session_id)
    assert stored is not None
    resumed = SessionManager.resume(service, stored)
    assert resumed.events == events
    assert resumed.manager.head_id == stored.head_id
    assert resumed.last_event_at == service.load_events(session_id)[-1].created_at
    resumed.manager.persist_events([*resumed.events, UserMessage("more")])
    assert service.load_conversation(session_id).events == [*events, UserMessage("more")]


_line_kinds = st.sampled_from(["user", "text", "tool", "unknown", "bad_payload", "meta", "server", "archive", "blank"])


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(kinds=st.lists(_line_kinds, max_size=40), chunk=st.sampled_from([64, 300, 1 << 16]))
def test_the_one_pass_reader_answers_as_the_general_one(kinds: list[str], chunk: int) -> None:
    """Any mix of event types, facts, unknown types, payloads of the wrong shape and blank lines, cut into
    chunks anywhere: the same typed events and head as ``load_events``, and the summary a fresh fold makes."""
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        patch.setattr(eventlog.reader, "CHUNK_BYTES", chunk)
        service = LocalSessionService.open(Path(tmp), durability="flush")
        manager = SessionManager.create_new(service, "/p", None)
        manager.persist_events([UserMessage("first")])
        path = service.log_path(manager.session_id)
        parent = manager.head_id
        lines = []
        for n, kind in enumerate(kinds):
            if kind == "blank":
                lines.append(b"  ")
                continue
            if kind in ("meta", "server", "archive"):
                name = {"meta": "metadata", "server": "server_session_id", "archive": "archived"}[kind]
                # Some values too long to be kept in the summary: read back by their offsets.
                value = {"meta": f"v{n}" * (1 + n % 3 * 40), "server": f"s{n}", "archive": n % 2 == 0}[kind]
                record = Record(
                    k="fact",
                    id=new_id(),
                    ts=dt.datetime.now(dt.UTC),
                    type=name,
                    key="k" if kind == "meta" else None,
                    data=msgspec.Raw(msgspec.json.encode(value)),
                )
            else:
                event_type, data = {
                    "user": ("user_message", {"content": f"u{n}"}),
                    "text": ("text", {"content": f"t{n}"}),
                    "tool": ("tool_call", {"id": f"c{n}", "name": "x", "input": {"n": n}}),
                    "unknown": ("from_the_future", {"x": n}),
                    "bad_payload": ("text", {"content": n}),
                }[kind]
                record = Record(
                    k=KIND_EVENT,
                    id=new_id(),
                    ts=dt.datetime.now(dt.UTC),
                    parent=parent,
                    inv="i",
                    type=event_type,
                    data=msgspec.Raw(msgspec.json.encode(data)),
                )
                parent = record.id
            lines.append(encode_records([record]).rstrip(b"\n"))
        with path.open("ab") as log:
            log.write(b"".join(line + b"\n" for line in lines))
        # The reference: a general fold of the whole log (no index, no one-pass read).
        (Path(tmp) / "index.jsonl").unlink(missing_ok=True)
        reference = LocalSessionService.open(Path(tmp))
        expected = (reference.get_session(manager.session_id), reference.get_metadata(manager.session_id, "k"))
        (Path(tmp) / "index.jsonl").unlink(missing_ok=True)  # so that nothing the reference saved is shared
        fresh = LocalSessionService.open(Path(tmp))
        got = fresh.load_conversation(manager.session_id)
        assert (got.events, got.head_id, got.last_event_at) == _typed_load_events(fresh, manager.session_id)
        # What the one pass handed to the log answers as the general fold did.
        assert (fresh.get_session(manager.session_id), fresh.get_metadata(manager.session_id, "k")) == expected


def test_a_known_summary_is_reused_only_while_it_covers_the_file(tmp_path: Path) -> None:
    """read_linear skips summarizing when handed a summary of exactly these bytes, and only then."""
    from sessions._resume import read_linear
    from sessions.events import STANDARD_TYPES

    store = LocalSessionService.open(tmp_path, durability="flush")
    manager = SessionManager.create_new(store, "/p")
    events = _conversation(40)
    manager.persist_events(events)
    path = store.log_path(manager.session_id)
    store.load_conversation(manager.session_id)  # leaves the store holding a current summary
    known = store._logs.log(manager.session_id).cached_state
    assert known.size == path.stat().st_size

    reused = read_linear(path, STANDARD_TYPES, known)
    assert reused is not None and reused.state is known and reused.events == events

    manager.persist_events([*events, UserMessage("more")])  # the file grew: the old summary no longer covers it
    grown = read_linear(path, STANDARD_TYPES, known)
    assert grown is not None and grown.state is not known
    assert grown.events == [*events, UserMessage("more")] and grown.state.events == 41

    # A summary of other bytes with the same stamp (what a racy copy could leave) is caught by its head.
    fresh = read_linear(path, STANDARD_TYPES)
    assert fresh is not None
    stamped = msgspec.structs.replace(
        fresh.state, ino=path.stat().st_ino, ctime_ns=path.stat().st_ctime_ns, seen_ns=path.stat().st_ctime_ns + 10**10
    )
    wrong = msgspec.structs.replace(stamped, head_id="not-the-head")
    assert read_linear(path, STANDARD_TYPES, stamped) is not None
    assert read_linear(path, STANDARD_TYPES, wrong) is None


def test_a_log_smaller_than_a_chunk_takes_the_one_pass_decoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The header (which has no type) is read apart, so the rest of a small log fits the one-pass union."""
    import sessions._resume

    store = LocalSessionService.open(tmp_path, durability="flush")
    manager = SessionManager.create_new(store, "/p")
    events = _conversation(30)
    manager.persist_events(events)
    manager.set_metadata("k", "v")
    general: list[int] = []
    real = sessions._resume._general_chunk

    def spy(offset: int, *args: Any) -> Any:
        general.append(offset)
        return real(offset, *args)

    monkeypatch.setattr(sessions._resume, "_general_chunk", spy)
    fresh = LocalSessionService.open(tmp_path, durability="flush")
    assert fresh.load_conversation(manager.session_id).events == events
    assert general == []
    stored = fresh.get_session(manager.session_id)
    assert stored is not None and stored.event_count == 30 and fresh.get_metadata(manager.session_id, "k") == "v"


def test_lines_the_fast_reader_must_not_mistake(tmp_path: Path) -> None:
    """An event typed with a fact's name, and a record of an unknown kind typed as an event."""
    store = LocalSessionService.open(tmp_path, durability="flush")
    manager = SessionManager.create_new(store, "/p")
    manager.persist_events([UserMessage("one")])
    sid = manager.session_id
    store.append_event(sid, new_id(), manager.head_id, "i", "metadata", '{"x":1}')
    with store.log_path(sid).open("ab") as log:  # a newer version's kind of line: kept and passed over
        log.write(b'{"k":"note","id":"n1","ts":"2026-01-01T00:00:00Z","type":"text","data":{"content":"n"}}\n')
    fresh = LocalSessionService.open(tmp_path, durability="flush")
    stored = fresh.get_session(sid)
    assert stored is not None and stored.event_count == 2
    resumed = SessionManager.resume(fresh, stored)
    assert resumed.events == [UserMessage("one"), UnknownEvent("metadata", '{"x":1}')]
    resumed.manager.persist_events([*resumed.events, Text("two")])  # the head is the real one: no conflict
    assert [e.event_type for e in LocalSessionService.open(tmp_path).load_events(sid)] == [
        "user_message",
        "metadata",
        "text",
    ]
