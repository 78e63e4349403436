"""JsonlSessionService against ADK's BaseSessionService, called directly: windows, after_timestamp, state scopes,
atomic state, stale sessions, listing by app and user, deletion, concurrency."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

pytest.importorskip("google.adk", reason="needs the adk extra (make test installs it)")

from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events import Event, EventActions
from google.adk.sessions import BaseSessionService, DatabaseSessionService, InMemorySessionService, Session
from google.adk.sessions.base_session_service import GetSessionConfig
from google.genai import types

from eventlog import new_id
from sessions import LocalSessionService
from sessions.errors import SessionWriteError
from sessions.integrations._adk_logs import AdkEvent, candidates, stamp
from sessions.integrations.adk import EVENT_TYPES, JsonlSessionService
from sessions.models import StoredEvent

_T = TypeVar("_T")
APP = "app"


def run(scenario: Callable[[JsonlSessionService], Awaitable[_T]], root: Path) -> _T:
    async def main() -> _T:
        async with JsonlSessionService(root) as service:
            return await scenario(service)

    return asyncio.run(main())


def event(text: str, *, delta: dict[str, Any] | None = None, at: float | None = None) -> Event:
    made = Event(
        author="user",
        invocation_id="inv",
        content=types.Content(role="user", parts=[types.Part(text=text)]),
        actions=EventActions(state_delta=delta or {}),
    )
    if at is not None:
        made.timestamp = at
    return made


def texts(session: Session | None) -> list[str]:
    assert session is not None
    return [e.content.parts[0].text or "" for e in session.events if e.content and e.content.parts]


async def get(service: JsonlSessionService, user: str, sid: str, **config: Any) -> Session | None:
    return await service.get_session(
        app_name=APP, user_id=user, session_id=sid, config=GetSessionConfig(**config) if config else None
    )


def test_create_get_and_already_exists(tmp_path: Path) -> None:
    async def scenario(service: JsonlSessionService) -> None:
        made = await service.create_session(app_name=APP, user_id="u", session_id="s", state={"k": 1})
        assert (made.id, made.app_name, made.user_id, made.state, made.events) == ("s", APP, "u", {"k": 1}, [])
        with pytest.raises(AlreadyExistsError):
            await service.create_session(app_name=APP, user_id="u", session_id="s")
        generated = await service.create_session(app_name=APP, user_id="u")
        assert generated.id and generated.id != "s"
        got = await get(service, "u", "s")
        assert got is not None and got.state == {"k": 1} and got.last_update_time == made.last_update_time
        assert await get(service, "u", "nope") is None
        assert await get(service, "someone else", "s") is None

    run(scenario, tmp_path)


def test_the_same_id_for_two_users_and_odd_ids(tmp_path: Path) -> None:
    async def scenario(service: JsonlSessionService) -> None:
        for user in ("u1", "u2"):
            for sid in ("s", "with space", "../x", "é" * 3):
                session = await service.create_session(app_name=APP, user_id=user, session_id=sid)
                await service.append_event(session, event(f"{user}/{sid}"))
        for user in ("u1", "u2"):
            for sid in ("s", "with space", "../x", "é" * 3):
                assert texts(await get(service, user, sid)) == [f"{user}/{sid}"]
        assert service.log_id(APP, "u1", "s") == "s"
        assert service.log_id(APP, "u2", "s") == candidates(APP, "u2", "s")[1]

    run(scenario, tmp_path)


def test_windows_read_from_the_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(service: JsonlSessionService) -> None:
        session = await service.create_session(app_name=APP, user_id="u", session_id="w")
        for n in range(300):
            await service.append_event(session, event(f"e{n}", at=1000.0 + n))
        asked: list[int | None] = []
        real = service.store.sync.load_events

        def spy(session_id: str, *, last: int | None = None, from_compaction: bool = False) -> Any:
            asked.append(last)
            return real(session_id, last=last, from_compaction=from_compaction)

        monkeypatch.setattr(service.store.sync, "load_events", spy)
        assert texts(await get(service, "u", "w", num_recent_events=3)) == ["e297", "e298", "e299"]
        assert asked == [3]
        assert texts(await get(service, "u", "w", num_recent_events=0)) == []
        assert len(texts(await get(service, "u", "w", num_recent_events=1000))) == 300
        assert len(texts(await get(service, "u", "w"))) == 300
        asked.clear()
        assert texts(await get(service, "u", "w", after_timestamp=1295.0)) == [f"e{n}" for n in range(295, 300)]
        assert asked == [32]  # one window: its oldest event is before the time
        assert texts(await get(service, "u", "w", after_timestamp=1250.0, num_recent_events=2)) == ["e298", "e299"]
        assert len(texts(await get(service, "u", "w", after_timestamp=1100.5))) == 199
        assert len(texts(await get(service, "u", "w", after_timestamp=0.0))) == 300
        assert texts(await get(service, "u", "w", after_timestamp=5000.0)) == []
        with pytest.raises(ValueError, match="num_recent_events"):
            GetSessionConfig(num_recent_events=-1)

    run(scenario, tmp_path)


def test_after_timestamp_finer_than_a_microsecond(tmp_path: Path) -> None:
    async def scenario(service: JsonlSessionService) -> None:
        session = await service.create_session(app_name=APP, user_id="u", session_id="t")
        await service.append_event(session, event("a", at=1000.0000001))
        await service.append_event(session, event("b", at=1000.0000004))
        assert texts(await get(service, "u", "t", after_timestamp=1000.0000004)) == ["b"]
        assert texts(await get(service, "u", "t", after_timestamp=1000.0000001)) == ["a", "b"]

    run(scenario, tmp_path)


def test_state_scopes(tmp_path: Path) -> None:
    async def scenario(service: JsonlSessionService) -> None:
        one = await service.create_session(
            app_name=APP,
            user_id="ann",
            session_id="one",
            state={"s": 1, "app:a": "A", "user:u": "U", "temp:t": "gone"},
        )
        assert one.state == {"s": 1, "app:a": "A", "user:u": "U"}
        await service.append_event(one, event("x", delta={"s": 2, "user:u": "U2", "app:b": [1], "temp:t": 5}))
        assert one.state["temp:t"] == 5  # this invocation sees it...
        reread = await get(service, "ann", "one")
        assert reread is not None
        assert reread.state == {"s": 2, "app:a": "A", "app:b": [1], "user:u": "U2"}  # ...no one else does
        assert "temp:t" not in (reread.events[0].actions.state_delta or {})
        two = await service.create_session(app_name=APP, user_id="ann", session_id="two")
        assert two.state == {"app:a": "A", "app:b": [1], "user:u": "U2"}
        bob = await service.create_session(app_name=APP, user_id="bob", session_id="b")
        assert bob.state == {"app:a": "A", "app:b": [1]}
        other_app = await service.create_session(app_name="other", user_id="ann", session_id="o")
        assert other_app.state == {}
        assert await service.get_user_state(app_name=APP, user_id="ann") == {"u": "U2"}
        assert await service.get_user_state(app_name=APP, user_id="nobody") == {}

    run(scenario, tmp_path)
    # A new process sees the same (the state is in the logs, not in this object).
    found = run(lambda service: get(service, "ann", "two"), tmp_path)
    assert found is not None and found.state == {"app:a": "A", "app:b": [1], "user:u": "U2"}


def test_session_state_goes_in_the_event_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(service: JsonlSessionService) -> None:
        session = await service.create_session(app_name=APP, user_id="u", session_id="atomic", state={"user:u": 0})
        writes: list[Any] = []
        real = service.store.sync.write_batch

        def spy(session_id: str, batch: Any) -> None:
            writes.append((session_id, batch))
            real(session_id, batch)

        monkeypatch.setattr(service.store.sync, "write_batch", spy)
        await service.append_event(session, event("x", delta={"s": 1, "user:u": 2}))
        (log_id, first), (_, second) = writes
        assert log_id == "atomic" and len(first.events) == 1 and first.metadata == {"adk.state:s": 1}
        assert second.metadata == {"adk.state:u": 2} and not second.events

        # The disk refuses the event's write: neither the event, nor its session state, nor its user state is kept.
        def refuse(session_id: str, batch: Any) -> None:
            raise SessionWriteError("disk full")

        monkeypatch.setattr(service.store.sync, "write_batch", refuse)
        with pytest.raises(SessionWriteError):
            await service.append_event(session, event("y", delta={"s": 99, "user:u": 99}))
        monkeypatch.setattr(service.store.sync, "write_batch", real)
        stored = await get(service, "u", "atomic")
        assert stored is not None and texts(stored) == ["x"] and stored.state == {"s": 1, "user:u": 2}

    run(scenario, tmp_path)


def test_stale_sessions_are_refused(tmp_path: Path) -> None:
    async def scenario(service: JsonlSessionService) -> None:
        created = await service.create_session(app_name=APP, user_id="u", session_id="st")
        first = await get(service, "u", "st")
        second = await get(service, "u", "st")
        assert first is not None and second is not None
        await service.append_event(first, event("from first"))
        with pytest.raises(StaleSessionError):
            await service.append_event(second, event("from second", delta={"s": "lost"}))
        with pytest.raises(StaleSessionError):
            await service.append_event(created, event("from the created copy"))
        await service.append_event(first, event("first again"))  # the up-to-date copy carries on
        # A Session made by hand (no revision marker) is checked by its last_update_time.
        by_hand = Session(id="st", app_name=APP, user_id="u", last_update_time=first.last_update_time - 1)
        with pytest.raises(StaleSessionError):
            await service.append_event(by_hand, event("old"))
        fresh = Session(id="st", app_name=APP, user_id="u", last_update_time=first.last_update_time)
        await service.append_event(fresh, event("current"))
        reloaded = await get(service, "u", "st")
        assert texts(reloaded) == ["from first", "first again", "current"]
        assert reloaded is not None and "s" not in reloaded.state
        missing = Session(id="gone", app_name=APP, user_id="u")
        with pytest.raises(SessionNotFoundError):
            await service.append_event(missing, event("x"))
        # Partial (streaming) events are not stored.
        partial = event("partial")
        partial.partial = True
        assert await service.append_event(reloaded, partial) is partial
        assert texts(await get(service, "u", "st")) == texts(reloaded)

    run(scenario, tmp_path)


STALE_WRITER = """
import asyncio, sys
from google.adk.events import Event
from sessions.integrations.adk import JsonlSessionService
async def main(root):
    async with JsonlSessionService(root) as service:
        session = await service.get_session(app_name="app", user_id="u", session_id="px")
        await service.append_event(session, Event(author="other process", invocation_id="i"))
asyncio.run(main(sys.argv[1]))
"""


def test_a_session_another_process_appended_to_is_stale(tmp_path: Path) -> None:
    async def scenario(service: JsonlSessionService) -> None:
        session = await service.create_session(app_name=APP, user_id="u", session_id="px")
        await service.append_event(session, event("mine"))
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", STALE_WRITER, str(tmp_path)], capture_output=True, check=False
        )
        assert done.returncode == 0, done.stderr
        with pytest.raises(StaleSessionError):
            await service.append_event(session, event("mine again"))
        reloaded = await get(service, "u", "px")
        assert reloaded is not None and [e.author for e in reloaded.events] == ["user", "other process"]
        await service.append_event(reloaded, event("after reload"))

    run(scenario, tmp_path)


def test_list_by_app_and_user_from_the_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(service: JsonlSessionService) -> None:
        made: list[Session] = []
        for app, user, sid in [(APP, "ann", "a1"), (APP, "bob", "b1"), ("other", "ann", "x"), (APP, "ann", "a2")]:
            session = await service.create_session(app_name=app, user_id=user, session_id=sid, state={"id": sid})
            await service.append_event(session, event(sid, delta={"user:name": user, "app:n": len(made)}))
            made.append(session)
        await service.append_event(made[0], event("a1 again"))  # a1 is now the most recently updated
        read: list[str] = []
        real = service.store.sync.metadata

        def spy(session_id: str) -> dict[str, Any]:
            read.append(session_id)
            return real(session_id)

        monkeypatch.setattr(service.store.sync, "metadata", spy)
        monkeypatch.setattr(service.store.sync, "load_events", None)  # listing reads no events
        anns = (await service.list_sessions(app_name=APP, user_id="ann")).sessions
        assert [s.id for s in anns] == ["a2", "a1"]  # oldest update first
        assert anns[0].state == {"id": "a2", "user:name": "ann", "app:n": 3}
        assert all(s.events == [] and s.user_id == "ann" and s.app_name == APP for s in anns)
        assert service.log_id("other", "ann", "x") not in read  # another app's log: not read
        everyone = (await service.list_sessions(app_name=APP)).sessions
        assert [(s.user_id, s.id) for s in everyone] == [("bob", "b1"), ("ann", "a2"), ("ann", "a1")]
        assert everyone[0].state["user:name"] == "bob"
        assert (await service.list_sessions(app_name="none")).sessions == []
        assert (await service.list_sessions(app_name=APP, user_id="nobody")).sessions == []

    run(scenario, tmp_path)


def test_delete_moves_to_the_trash(tmp_path: Path) -> None:
    async def scenario(service: JsonlSessionService) -> None:
        session = await service.create_session(app_name=APP, user_id="u", session_id="d", state={"user:keep": 1})
        await service.append_event(session, event("x"))
        await service.delete_session(app_name=APP, user_id="u", session_id="d")
        await service.delete_session(app_name=APP, user_id="u", session_id="d")  # again: no-op
        assert await get(service, "u", "d") is None
        assert (await service.list_sessions(app_name=APP)).sessions == []
        with pytest.raises(SessionNotFoundError):
            await service.append_event(session, event("after delete"))
        again = await service.create_session(app_name=APP, user_id="u", session_id="d")
        assert again.state == {"user:keep": 1}  # user state outlives the session
        assert texts(await get(service, "u", "d")) == []

    run(scenario, tmp_path)
    with LocalSessionService.open(tmp_path, event_types=EVENT_TYPES) as sync:
        assert [t.id for t in sync.list_trash()] == ["d"]


def test_tasks_appending_at_once(tmp_path: Path) -> None:
    async def scenario(service: JsonlSessionService) -> None:
        sessions = [
            await service.create_session(app_name=APP, user_id=f"u{n % 4}", session_id=f"c{n}") for n in range(8)
        ]

        async def agent(session: Session, n: int) -> None:
            for step in range(10):
                await service.append_event(session, event(f"{n}.{step}", delta={"step": step, f"user:last{n}": step}))

        # Sixteen tasks: two per session, sharing its Session object (as parallel agents of one invocation do).
        await asyncio.gather(*(agent(sessions[n % 8], n) for n in range(16)))
        for n in range(8):
            got = await get(service, f"u{n % 4}", f"c{n}")
            assert got is not None and len(got.events) == 20
            for task in (n, n + 8):
                assert [t for t in texts(got) if t.startswith(f"{task}.")] == [f"{task}.{s}" for s in range(10)]
            assert got.state["step"] == 9
            assert got.state[f"user:last{n}"] == 9 and got.state[f"user:last{n + 8}"] == 9

    run(scenario, tmp_path)


def test_a_cancelled_append_either_landed_or_not(tmp_path: Path) -> None:
    async def scenario(service: JsonlSessionService) -> None:
        await service.create_session(app_name=APP, user_id="u", session_id="cx")
        for n in range(10):
            session = await get(service, "u", "cx")
            assert session is not None
            before = len(session.events)
            task = asyncio.create_task(service.append_event(session, event(f"e{n}", delta={"n": n})))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            after = await get(service, "u", "cx")
            assert after is not None
            landed = len(after.events) - before
            assert landed in (0, 1)
            assert after.state.get("n") == (n if landed else after.state.get("n"))

    run(scenario, tmp_path)


async def hand_built_appends(service: BaseSessionService) -> list[str]:
    """Append through Sessions not read from ``service`` (no revision marker): what ADK's services accept."""

    async def outcome(session: Session, text: str) -> str:
        try:
            await service.append_event(session, event(text))
        except StaleSessionError:
            return "stale"
        return "ok"

    await service.create_session(app_name=APP, user_id="u", session_id="hb")
    got = [await outcome(Session(id="hb", app_name=APP, user_id="u"), "no events, time 0")]
    stored = await service.get_session(app_name=APP, user_id="u", session_id="hb")
    assert stored is not None
    got.append(await outcome(Session(id="hb", app_name=APP, user_id="u", events=list(stored.events)), "its events"))
    stored = await service.get_session(app_name=APP, user_id="u", session_id="hb")
    assert stored is not None
    got.append(await outcome(Session.model_validate_json(stored.model_dump_json()), "rebuilt from JSON"))
    got.append(await outcome(Session(id="hb", app_name=APP, user_id="u"), "no events, but some are stored"))
    behind = Session(id="hb", app_name=APP, user_id="u", events=list(stored.events))
    got.append(await outcome(behind, "one event behind"))
    final = await service.get_session(app_name=APP, user_id="u", session_id="hb")
    return [*got, *texts(final)]


def test_hand_built_sessions_as_adk_services_take_them(tmp_path: Path) -> None:
    async def main() -> None:
        in_memory = await hand_built_appends(InMemorySessionService())
        assert in_memory[:3] == ["ok", "ok", "ok"]  # it never refuses a session as stale
        database = DatabaseSessionService(f"sqlite+aiosqlite:///{tmp_path / 'adk.db'}")
        expected = await hand_built_appends(database)
        await database.close()
        assert expected == ["ok", "ok", "ok", "stale", "stale", "no events, time 0", "its events", "rebuilt from JSON"]
        async with JsonlSessionService(tmp_path / "jsonl") as service:
            assert await hand_built_appends(service) == expected

    asyncio.run(main())


def foreign_events_between(sync: LocalSessionService, log_id: str, count: int) -> None:
    """Append ``count`` ADK events (text ``e<n>``, at 1000 + n) to a log, each followed by an event of another type."""
    head = sync.get_session(log_id)
    assert head is not None
    parent, records = head.head_id, []
    for n in range(count):
        adk = event(f"e{n}", at=1000.0 + n)
        for event_type, data in [(AdkEvent.TYPE, adk.model_dump_json(exclude_none=True)), ("app_note", '{"n":1}')]:
            records.append(
                StoredEvent(
                    id=new_id(),
                    session_id=log_id,
                    parent_id=parent,
                    invocation_id="inv",
                    event_type=event_type,
                    event_data=data,
                    created_at=stamp(1000.0 + n),
                )
            )
            parent = records[-1].id
    sync.append_events(log_id, records)


def test_recent_events_between_other_events_read_few_windows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario(service: JsonlSessionService) -> None:
        await service.create_session(app_name=APP, user_id="u", session_id="mixed")
        await service.store.run(foreign_events_between, service.store.sync, "mixed", 500)
        asked: list[int | None] = []
        real = service.store.sync.load_events

        def spy(session_id: str, *, last: int | None = None, from_compaction: bool = False) -> Any:
            asked.append(last)
            return real(session_id, last=last, from_compaction=from_compaction)

        monkeypatch.setattr(service.store.sync, "load_events", spy)
        assert texts(await get(service, "u", "mixed", num_recent_events=2)) == ["e498", "e499"]
        assert asked == [2, 8]  # two events of the four in the second window are ADK's: enough
        asked.clear()
        assert texts(await get(service, "u", "mixed", num_recent_events=3, after_timestamp=1400.0)) == [
            "e497",
            "e498",
            "e499",
        ]
        assert asked == [32]
        assert len(texts(await get(service, "u", "mixed", num_recent_events=600))) == 500

    run(scenario, tmp_path)


async def after_timestamps(service: BaseSessionService) -> list[list[str]]:
    """Events stamped out of order (10, 30, 20, 40), read with ``after_timestamp`` and ``num_recent_events``."""
    await service.create_session(app_name=APP, user_id="u", session_id="order")
    for at in (10.0, 30.0, 20.0, 40.0):
        session = await service.get_session(app_name=APP, user_id="u", session_id="order")
        assert session is not None
        await service.append_event(session, event(f"at {at:g}", at=at))
    configs: list[dict[str, Any]] = [
        {"after_timestamp": 25.0},
        {"after_timestamp": 15.0},
        {"after_timestamp": 5.0},
        {"after_timestamp": 50.0},
        {"after_timestamp": 30.0},
        {"after_timestamp": 25.0, "num_recent_events": 3},
        {"after_timestamp": 15.0, "num_recent_events": 2},
    ]
    return [
        texts(await service.get_session(app_name=APP, user_id="u", session_id="order", config=GetSessionConfig(**c)))
        for c in configs
    ]


def test_after_timestamp_out_of_order_as_in_memory_service(tmp_path: Path) -> None:
    async def main() -> None:
        expected = await after_timestamps(InMemorySessionService())
        async with JsonlSessionService(tmp_path) as service:
            assert await after_timestamps(service) == expected

    asyncio.run(main())
