"""Windows of a session: ``load_events(last=..., from_compaction=...)`` and resuming from one.

A window read from the end of the file must equal the same window cut from a
full read, on any log: straight or branched, damaged or torn.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eventlog._fs as fs
import eventlog.reader
import sessions._logs
from eventlog import KIND_EVENT, Record, encode_records, new_id
from sessions import Compaction, LocalSessionService, SessionManager, StoredEvent, Text, UserMessage

_steps = st.lists(
    st.sampled_from(["user", "text", "compaction", "meta", "fork", "damage", "blank", "long", "pop", "rewind"]),
    max_size=30,
)


def _window(events: list[StoredEvent], last: int | None, from_compaction: bool) -> list[StoredEvent]:
    """The rule, stated on a full read: from the newest compaction, then the last ``last``."""
    if from_compaction:
        starts = [n for n, e in enumerate(events) if e.event_type == "compaction"]
        events = events[starts[-1] :] if starts else events
    if last is not None:
        events = events[-last:] if last > 0 else []
    return events


def _raw_event(parent: str | None, event_type: str, data: object) -> bytes:
    record = Record(
        k=KIND_EVENT,
        id=new_id(),
        ts=dt.datetime.now(dt.UTC),
        parent=parent,
        inv="i",
        type=event_type,
        data=msgspec.Raw(msgspec.json.encode(data)),
    )
    return encode_records([record])


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    steps=_steps,
    torn=st.booleans(),
    last=st.none() | st.integers(0, 12),
    from_compaction=st.booleans(),
    block=st.sampled_from([64, 500, 1 << 16]),
)
def test_a_window_read_from_the_end_equals_the_window_of_a_full_read(
    steps: list[str], torn: bool, last: int | None, from_compaction: bool, block: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        patch.setattr(eventlog.reader, "TAIL_BLOCK", block)
        service = LocalSessionService.open(Path(tmp), durability="flush")
        manager = SessionManager.create_new(service, "/p", None)
        conversation: list[object] = [UserMessage("first")]
        manager.persist_events(conversation)  # type: ignore[arg-type]
        path = service.log_path(manager.session_id)
        for n, step in enumerate(steps):
            if step in ("user", "text", "compaction", "long"):
                event = {
                    "user": UserMessage(f"u{n}"),
                    "text": Text(f"t{n}"),
                    "compaction": Compaction(summary=f"up to {n}", tokens_before=n),
                    "long": Text("x" * 3000),
                }[step]
                conversation.append(event)
                manager.persist_events(conversation)  # type: ignore[arg-type]
            elif step == "meta":
                manager.set_metadata("k", f"v{n}")
            elif step == "pop":
                conversation = list(manager.pop())
            elif step == "rewind":  # back three events, or to the start
                branch = service.load_events(manager.session_id)
                conversation = list(manager.rewind(branch[-4].id if len(branch) >= 4 else None))
            else:
                with path.open("ab") as log:
                    if step == "fork":  # another machine's branch, as a sync merge leaves it
                        log.write(_raw_event(manager.head_id, "text", {"content": f"fork {n}"}))
                    elif step == "damage":
                        log.write(b"{not json\n")
                    else:
                        log.write(b"\n")
                if step in ("fork", "damage"):
                    break  # the manager's head no longer describes the log: stop writing through it
        if torn:
            with path.open("ab") as log:
                log.write(b'{"k":"event","id":"cut')
        tail_reads: list[object] = []
        real_tail = eventlog.reader.read_tail_events

        def spy(*args: Any, **kwargs: Any) -> Any:
            tail_reads.append(result := real_tail(*args, **kwargs))
            return result

        patch.setattr(sessions._logs, "read_tail_events", spy)
        fresh = LocalSessionService.open(Path(tmp))
        full = LocalSessionService.open(Path(tmp)).load_events(manager.session_id)
        assert fresh.load_events(manager.session_id, last=last, from_compaction=from_compaction) == _window(
            full, last, from_compaction
        )
        if last != 0 and (last is not None or from_compaction) and not {"fork", "damage"} & set(steps):
            # A straight or rewound log is read from its end, never the whole way (a fallback would hide a
            # wrong tail).
            assert tail_reads and tail_reads[-1] is not None


def _count_log_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, the bytes read from session logs add up in the one item of the list returned."""
    read = [0]
    real = fs.pread

    def counting(fd: int, n: int, offset: int) -> bytes:
        data = real(fd, n, offset)
        if "/sessions/" in os.readlink(f"/proc/self/fd/{fd}"):
            read[0] += len(data)
        return data

    monkeypatch.setattr(fs, "pread", counting)
    return read


def test_the_last_twenty_of_a_long_log_read_only_the_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service = LocalSessionService.open(tmp_path, durability="flush")
    manager = SessionManager.create_new(service, "/p", None)
    conversation: list[UserMessage | Text] = []
    for n in range(20_000):
        conversation.append(UserMessage(f"message {n} " + "x" * 100))
    manager.persist_events(conversation)
    service.close()
    size = os.path.getsize(service.log_path(manager.session_id))
    fresh = LocalSessionService.open(tmp_path)
    read = _count_log_reads(monkeypatch)
    window = fresh.load_events(manager.session_id, last=20)
    assert [e.event_data for e in window] == [msgspec.json.encode(e).decode() for e in conversation[-20:]]
    assert read[0] < 2 * eventlog.reader.TAIL_BLOCK + 64 * 1024 < size // 10


def test_resume_from_a_compaction_then_persist_the_window_and_more(tmp_path: Path) -> None:
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/p", None)
    before = [UserMessage(f"old {n}") for n in range(50)]
    checkpoint = Compaction(summary="fifty old messages", tokens_before=12_000)
    after = [UserMessage("new 1"), Text("new 2")]
    manager.persist_events([*before, checkpoint, *after])
    stored = service.get_session(manager.session_id)
    assert stored is not None
    resumed = SessionManager.resume(service, stored, from_compaction=True)
    assert resumed.events == [checkpoint, *after]
    resumed.manager.persist_events([*resumed.events, UserMessage("newer")])
    full = service.load_events(manager.session_id)
    assert len(full) == 54 and full[-1].event_data == '{"content":"newer"}'
    assert full[-1].parent_id == full[-2].id  # it continues the head, after the whole history
    last_two = SessionManager.resume(service, stored, last=2)
    assert last_two.events == [after[1], UserMessage("newer")]
    with pytest.raises(Exception, match="does not extend"):
        last_two.manager.persist_events([UserMessage("not the window")])


def test_after_a_pop_the_last_twenty_are_still_read_from_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = LocalSessionService.open(tmp_path, durability="flush")
    manager = SessionManager.create_new(service, "/p", None)
    conversation: list[object] = [UserMessage(f"message {n} " + "x" * 100) for n in range(20_000)]
    manager.persist_events(conversation)  # type: ignore[arg-type]
    conversation = list(manager.pop())
    conversation += [Text("after the pop")]
    manager.persist_events(conversation)  # type: ignore[arg-type]
    service.close()
    size = os.path.getsize(service.log_path(manager.session_id))
    fresh = LocalSessionService.open(tmp_path)
    fresh.get_session(manager.session_id)  # the summary (from the index) names the head
    read = _count_log_reads(monkeypatch)
    window = fresh.load_events(manager.session_id, last=20)
    assert [e.event_data for e in window] == [msgspec.json.encode(e).decode() for e in conversation[-20:]]
    assert read[0] < 2 * eventlog.reader.TAIL_BLOCK + 64 * 1024 < size // 10
