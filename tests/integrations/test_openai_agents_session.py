"""JsonlSession against the Agents SDK Session protocol, called directly: limits, pop, clear, ids, concurrency."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest

pytest.importorskip("agents", reason="needs the openai-agents extra (make test installs it)")

from agents.memory import SQLiteSession
from agents.memory.session import Session

from eventlog import new_id, utcnow
from sessions import LocalSessionService, SessionManager, Text
from sessions.aio import AsyncLocalSessionService
from sessions.integrations.openai_agents import EVENT_TYPES, SESSION_KEY, JsonlSession, mapped_session_id
from sessions.models import StoredEvent


def msg(n: int, role: str = "user") -> Any:
    """An item (typed Any: the SDK's item union does not admit test dicts)."""
    return {"role": role, "content": f"m{n}"}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_it_is_an_sdk_session(tmp_path: Path) -> None:
    session = JsonlSession("a", tmp_path)
    assert isinstance(session, Session)
    assert session.session_id == "a"
    assert session.session_settings is not None and session.session_settings.limit is None


def test_limits_match_sqlite_session(tmp_path: Path) -> None:
    async def scenario() -> None:
        ours = JsonlSession("lim", tmp_path / "store")
        theirs = SQLiteSession("lim")
        for start in range(0, 30, 7):  # batches of several sizes
            batch: list[Any] = [msg(n, "user" if n % 2 else "assistant") for n in range(start, min(start + 7, 30))]
            await ours.add_items(batch)
            await theirs.add_items(batch)
        for limit in (None, -1, 0, 1, 2, 7, 29, 30, 31, 1000):
            assert await ours.get_items(limit) == await theirs.get_items(limit), limit
        # A new object on the same folder (a new process would read the same) sees the same.
        fresh = JsonlSession("lim", tmp_path / "store")
        assert await fresh.get_items(5) == [msg(n, "user" if n % 2 else "assistant") for n in range(25, 30)]
        await ours.close()
        await fresh.close()
        theirs.close()

    run(scenario())


def test_a_limit_reads_from_the_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        session = JsonlSession("long", tmp_path)
        await session.add_items([msg(n) for n in range(3000)])
        asked: list[int | None] = []
        real = session.store.sync.load_conversation

        def spy(session_id: str, *, last: int | None = None, from_compaction: bool = False) -> Any:
            asked.append(last)
            return real(session_id, last=last, from_compaction=from_compaction)

        monkeypatch.setattr(session.store.sync, "load_conversation", spy)
        assert await session.get_items(limit=3) == [msg(2997), msg(2998), msg(2999)]
        assert asked == [3]

    run(scenario())


def test_items_keep_their_json(tmp_path: Path) -> None:
    item: Any = {
        "type": "function_call_output",
        "call_id": "c1",
        "output": 'ünïcode \u2028 "quoted" \n',
        "nested": {"list": [1, 2.5, None, True], "empty": {}},
    }

    async def scenario() -> None:
        async with JsonlSession("j", tmp_path) as session:
            await session.add_items([item])
        async with JsonlSession("j", tmp_path) as session:
            assert await session.get_items() == [item]
            assert await session.pop_item() == item

    run(scenario())


def test_pop_rewinds_and_keeps_history_in_the_log(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with JsonlSession("p", tmp_path) as session:
            assert await session.pop_item() is None  # nothing stored yet
            await session.add_items([msg(1), msg(2), msg(3)])
            assert await session.pop_item() == msg(3)
            assert await session.pop_item() == msg(2)
            assert await session.get_items() == [msg(1)]
            await session.add_items([msg(4)])
            assert await session.get_items() == [msg(1), msg(4)]
            assert await session.get_items(limit=1) == [msg(4)]
            assert await session.pop_item() == msg(4)
            assert await session.pop_item() == msg(1)
            assert await session.pop_item() is None
            assert await session.get_items() == []
            await session.add_items([msg(5)])
        async with JsonlSession("p", tmp_path) as session:
            assert await session.get_items() == [msg(5)]
        # Nothing was erased: every item ever added is still in the log's tree.
        with LocalSessionService.open(tmp_path, event_types=EVENT_TYPES) as sync:
            assert len(sync.load_tree("p").parent_of) == 5
            assert len(sync.load_events("p")) == 1

    run(scenario())


def test_clear_moves_the_log_to_the_trash_and_a_new_log_starts(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with JsonlSession("c", tmp_path) as session:
            await session.clear_session()  # nothing stored: no-op
            await session.add_items([msg(1), msg(2)])
            await session.clear_session()
            assert await session.get_items() == []
            assert await session.pop_item() is None
            await session.add_items([msg(3)])
            await session.clear_session()
            await session.add_items([msg(4)])
            assert await session.get_items() == [msg(4)]
        async with JsonlSession("c", tmp_path) as other:
            assert await other.get_items() == [msg(4)]
        with LocalSessionService.open(tmp_path) as sync:
            assert [t.id for t in sync.list_trash()] == ["c", "c"]
            assert sync.get_metadata("c", SESSION_KEY) == "c"

    run(scenario())


def test_clear_from_another_object_is_seen(tmp_path: Path) -> None:
    async def scenario() -> None:
        one, two = JsonlSession("x", tmp_path), JsonlSession("x", tmp_path)
        await one.add_items([msg(1)])
        assert await two.get_items() == [msg(1)]
        await two.clear_session()
        assert await one.get_items() == []
        await one.add_items([msg(2)])  # one's cached log was deleted: it starts a new one
        assert await two.get_items() == [msg(2)]
        assert await two.pop_item() == msg(2)
        assert await one.get_items() == []

    run(scenario())


@pytest.mark.parametrize("session_id", ["has space", "../etc", "é", "x" * 200, ".hidden", "con"])
def test_ids_outside_the_grammar_map_to_uuid5(tmp_path: Path, session_id: str) -> None:
    async def scenario() -> None:
        async with JsonlSession(session_id, tmp_path) as session:
            await session.add_items([msg(1)])
            assert session.log_id == mapped_session_id(session_id)
        async with JsonlSession(session_id, tmp_path) as session:
            assert await session.get_items() == [msg(1)]
        with LocalSessionService.open(tmp_path) as sync:
            assert sync.get_metadata(mapped_session_id(session_id), SESSION_KEY) == session_id
            assert [s.labels for s in sync.list_sessions()] == [{SESSION_KEY: session_id}]

    run(scenario())


def test_an_id_taken_by_another_session_is_left_alone(tmp_path: Path) -> None:
    with LocalSessionService.open(tmp_path) as sync:
        SessionManager.create_new(sync, session_id="main").persist_events([Text("the app's own")])
        SessionManager.create_new(sync, session_id="Other").persist_events([Text("differs in case")])

    async def scenario() -> None:
        async with JsonlSession("main", tmp_path) as session:
            assert await session.get_items() == []
            await session.add_items([msg(1)])
            assert session.log_id == mapped_session_id("main")
        async with JsonlSession("other", tmp_path) as session:
            await session.add_items([msg(2)])
            assert session.log_id == mapped_session_id("other")
            await session.clear_session()
        async with JsonlSession("main", tmp_path) as session:
            assert await session.get_items() == [msg(1)]

    run(scenario())
    with LocalSessionService.open(tmp_path) as sync:
        assert [type(e).__name__ for e in sync.load_conversation("main").events] == ["Text"]


def test_events_of_other_types_are_skipped(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with JsonlSession("mixed", tmp_path) as session:
            await session.add_items([msg(n) for n in range(5)])
            log_id = session.log_id
            assert log_id is not None
            stored = await session.store.get_session(log_id)
            assert stored is not None
            await session.store.run(
                lambda: SessionManager.attach(session.store.sync, stored).append([Text(f"t{n}") for n in range(9)])
            )
            assert await session.get_items(limit=3) == [msg(2), msg(3), msg(4)]
            assert len(await session.get_items()) == 5
            await session.add_items([msg(5)])
            assert await session.get_items(limit=2) == [msg(4), msg(5)]
            assert await session.pop_item() == msg(5)
            assert await session.pop_item() == msg(4)  # the Text events after it are rewound too

    run(scenario())


def test_a_shared_store_without_the_event_types(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with AsyncLocalSessionService.open(tmp_path) as store:
            session = JsonlSession("shared", store)
            await session.add_items([msg(1), msg(2)])
            assert await session.get_items() == [msg(1), msg(2)]
            assert await session.pop_item() == msg(2)
            await session.close()  # not its store: left open
            assert await store.get_session("shared") is not None

    run(scenario())


def test_tasks_adding_at_once_lose_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with AsyncLocalSessionService.open(tmp_path, event_types=EVENT_TYPES) as store:
            # Eight objects on one session (as eight requests would make), two tasks each, five calls of three items.
            sessions = [JsonlSession("busy", store) for _ in range(8)]

            async def writer(n: int) -> None:
                for call in range(5):
                    await sessions[n % 8].add_items(cast(Any, [{"w": n, "call": call, "i": i} for i in range(3)]))

            await asyncio.gather(*(writer(n) for n in range(16)))
            items: list[Any] = await sessions[0].get_items()
        assert len(items) == 16 * 5 * 3
        # Each call's items are together and in order; each writer's calls in the order it made them.
        for start in range(0, len(items), 3):
            call = items[start : start + 3]
            assert [i["i"] for i in call] == [0, 1, 2]
            assert len({(i["w"], i["call"]) for i in call}) == 1
        for n in range(16):
            assert [i["call"] for i in items if i["w"] == n and i["i"] == 0] == list(range(5))

    run(scenario())


WRITER = """
import asyncio, sys
from sessions.integrations.openai_agents import JsonlSession
async def main(store, tag):
    async with JsonlSession("proc", store) as session:
        for n in range(20):
            await session.add_items([{"p": tag, "n": n}, {"p": tag, "n": n, "second": True}])
asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_processes_adding_at_once_lose_nothing(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), tag], stderr=subprocess.PIPE) for tag in "ab"
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err

    async def check() -> None:
        async with JsonlSession("proc", tmp_path) as session:
            items: list[Any] = await session.get_items()
        assert len(items) == 80
        for first, second in zip(items[::2], items[1::2], strict=True):
            assert second == {**first, "second": True}
        for tag in "ab":
            assert [i["n"] for i in items[::2] if i["p"] == tag] == list(range(20))

    run(check())
    with LocalSessionService.open(tmp_path) as sync:
        assert sync.verify("proc").ok and not sync.verify("proc").forked


def test_a_cancelled_add_wrote_all_or_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with JsonlSession("cancel", tmp_path) as session:
            for n in range(20):
                task = asyncio.create_task(session.add_items([msg(n), msg(n, "assistant")]))
                await asyncio.sleep(0)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            items: list[Any] = await session.get_items()
            assert len(items) % 2 == 0
            assert all(a["content"] == b["content"] for a, b in zip(items[::2], items[1::2], strict=True))
            await session.add_items([msg(99)])
            assert (await session.get_items(limit=1)) == [msg(99)]

    run(scenario())


def test_a_limit_between_other_events_reads_few_windows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        session = JsonlSession("notes", tmp_path, durability="flush")
        await session.add_items([msg(0)])
        log_id = session.log_id
        assert log_id is not None
        sync = session.store.sync
        stored = sync.get_session(log_id)
        assert stored is not None
        parent, records = stored.head_id, []
        for n in range(1, 1000):  # each item followed by an event of another type
            for event_type, data in [
                ("openai_agents_item", f'{{"item":{{"role":"user","content":"m{n}"}}}}'),
                ("app_note", "{}"),
            ]:
                records.append(
                    StoredEvent(
                        id=new_id(),
                        session_id=log_id,
                        parent_id=parent,
                        invocation_id="inv",
                        event_type=event_type,
                        event_data=data,
                        created_at=utcnow(),
                    )
                )
                parent = records[-1].id
        sync.append_events(log_id, records)
        fresh = JsonlSession("notes", session.store)
        asked: list[int | None] = []
        real = sync.load_conversation

        def spy(session_id: str, *, last: int | None = None, from_compaction: bool = False) -> Any:
            asked.append(last)
            return real(session_id, last=last, from_compaction=from_compaction)

        monkeypatch.setattr(sync, "load_conversation", spy)
        assert await fresh.get_items(limit=2) == [msg(998), msg(999)]
        assert asked == [2, 8]  # four items in the second window: enough
        assert len(await fresh.get_items(limit=1500)) == 1000
        await session.close()

    run(scenario())


def test_a_session_cleared_and_its_id_taken_by_the_application(tmp_path: Path) -> None:
    async def scenario() -> None:
        one, two = JsonlSession("main", tmp_path), JsonlSession("main", tmp_path)
        await one.add_items([msg(1)])
        assert await one.get_items() == [msg(1)] and one.log_id == "main"
        await two.clear_session()
        # The application makes its own session of that id: one's cached log id is no longer the SDK session's.
        with LocalSessionService.open(tmp_path) as sync:
            SessionManager.create_new(sync, session_id="main").persist_events([Text("the app's own")])
        await one.add_items([msg(2)])
        assert one.log_id == mapped_session_id("main")
        assert await two.get_items() == [msg(2)]
        assert await one.get_items() == [msg(2)]
        three = JsonlSession("main", tmp_path)
        assert await three.get_items() == [msg(2)]
        # The SDK session is cleared and the app's session deleted: the next add takes the id "main" again.
        await three.clear_session()
        with LocalSessionService.open(tmp_path) as sync:
            assert [type(e).__name__ for e in sync.load_conversation("main").events] == ["Text"]  # untouched
            sync.delete_session("main")
        await three.add_items([msg(3)])
        assert three.log_id == "main"
        assert await one.get_items() == [msg(3)]  # one's cached (mapped) log is gone: found at its other id

    run(scenario())


def test_pop_and_clear_leave_an_application_session_of_that_id_alone(tmp_path: Path) -> None:
    async def scenario() -> None:
        one, two = JsonlSession("app", tmp_path), JsonlSession("app", tmp_path)
        await one.add_items([msg(1)])
        await two.clear_session()
        with LocalSessionService.open(tmp_path) as sync:
            SessionManager.create_new(sync, session_id="app").persist_events([Text("a"), Text("b")])
        assert await one.pop_item() is None
        await one.clear_session()
        assert await one.get_items() == []

    run(scenario())
    with LocalSessionService.open(tmp_path) as sync:
        assert [type(e).__name__ for e in sync.load_conversation("app").events] == ["Text", "Text"]
