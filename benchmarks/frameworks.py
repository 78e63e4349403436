"""Issue #12, the framework adapters against the frameworks' own stores, and the event loop while they write.

*agents*: ``JsonlSession`` (sessions.integrations.openai_agents) against the
OpenAI Agents SDK's ``SQLiteSession`` in a file database, both driven from one
event loop, each call timed inside its coroutine: ``get_items(limit=20)`` of
20,000 items, ``get_items()`` of 2,000, and ``add_items`` of 10 items a turn for
200 turns (ours with ``fsync``, the SDK with its default: WAL, ``synchronous``
FULL). Targets: at most 1.0, 0.5 and 1.0 times the SDK.

*adk*: ``JsonlSessionService.get_session(num_recent_events=20)`` on sessions
of 1,000, 10,000 and 100,000 events (``--quick``: 200 and 2,000), against ADK's
``DatabaseSessionService`` on ``sqlite+aiosqlite`` at the smallest size (filling
it goes through its ``append_event``, one commit each). Targets: the largest at
most 1.5 times the smallest, and ours at most 1.0 times ADK's service.

*loop lag*: 16 tasks each persisting turns through ``sessions.aio``
(``AsyncSessionManager.append``, fsync) while a probe task sleeps 1 ms in a loop
and records how late it wakes. Target: p99 below 1 ms. The same probe with
nothing else running is reported beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.harness import OURS, Result, Target, console, judge, paired, result_of, rounds, scratch
from benchmarks.peers import agents_sdk
from eventlog import new_id, utcnow
from sessions import Text, UserMessage
from sessions.aio import AsyncLocalSessionService, AsyncSessionManager
from sessions.models import StoredEvent

__all__ = ["bench_frameworks"]

_T = TypeVar("_T")
AGENTS_SDK = "agents-sdk-sqlite"
ADK_DB = "adk-database-sqlite"


class _Loop:
    """One event loop for a whole section; each call's coroutine timed inside it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coro: Awaitable[_T]) -> _T:
        async def wrapped() -> _T:
            return await coro

        return self.loop.run_until_complete(wrapped())

    def timed(self, make: Callable[[], Awaitable[object]]) -> float:
        async def go() -> float:
            start = time.perf_counter()
            await make()
            return time.perf_counter() - start

        return self.loop.run_until_complete(go())

    def close(self) -> None:
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()


@contextlib.contextmanager
def _loop() -> Iterator[_Loop]:
    loop = _Loop()
    try:
        yield loop
    finally:
        loop.close()


def bench_frameworks(quick: bool, base: Path, results: list[Result], targets: list[Target]) -> dict[str, Any]:
    """The measurements of issue #12; returns one-off figures for the report's ``info``."""
    info: dict[str, Any] = {}
    with scratch(base, "frameworks") as root:
        _agents(quick, root, results, targets)
        info["adk"] = _adk(quick, root, results, targets)
        _loop_lag(quick, root, results, targets)
    return info


# -- OpenAI Agents SDK ------------------------------------------------------------------------


def _agents(quick: bool, root: Path, results: list[Result], targets: list[Target]) -> None:
    if not agents_sdk.available():
        console.print("frameworks: openai-agents is not installed; its comparisons are skipped")
        return
    from agents.memory import SQLiteSession

    from sessions.integrations.openai_agents import JsonlSession

    big, small, last = (2_000, 200, 20) if quick else (20_000, 2_000, 20)
    turns, per_turn = (20, 10) if quick else (200, 10)
    reps = 5 if quick else 30
    items: list[Any] = agents_sdk.chat_items(big)
    with _loop() as loop:
        for count in (big, small):
            writer = JsonlSession(f"read-{count}", root / "agents", durability="flush")
            sdk = SQLiteSession(f"read-{count}", root / "agents.db")
            for start in range(0, count, 1000):
                loop.run(writer.add_items(items[start : min(start + 1000, count)]))
                loop.run(sdk.add_items(items[start : min(start + 1000, count)]))
            loop.run(writer.close())
            ours = JsonlSession(f"read-{count}", root / "agents")
            limit = last if count == big else None
            expected = items[count - last : count] if limit else items[:count]
            assert loop.run(ours.get_items(limit)) == expected == loop.run(sdk.get_items(limit))
            tasks = {
                OURS: lambda ours=ours, limit=limit: loop.timed(lambda: ours.get_items(limit)),
                AGENTS_SDK: lambda sdk=sdk, limit=limit: loop.timed(lambda: sdk.get_items(limit)),
            }
            what = f"get_items(limit={limit})" if limit else "get_items()"
            console.print(f"frameworks: agents {what} of {count} items, {reps} rounds")
            samples = rounds(tasks, reps, warmup=3)
            params = {"items": count, "limit": limit}
            for peer, values in samples.items():
                results.append(result_of(f"agents {what}", params, peer, values))
            targets.append(
                judge(
                    f"agents {what} of {count} items: JsonlSession / SQLiteSession",
                    paired(samples[OURS], samples[AGENTS_SDK]),
                    1.0 if limit else 0.5,
                )
            )
            loop.run(ours.close())
            sdk.close()

        turn = [items[n % len(items)] for n in range(per_turn)]
        made = iter(range(10**6))

        def add_ours() -> float:
            session = JsonlSession(f"add-{next(made)}", root / "agents")  # fsync, the default
            spent = sum(loop.timed(lambda: session.add_items(turn)) for _ in range(turns))
            loop.run(session.close())
            return spent

        def add_sdk() -> float:
            session = SQLiteSession(f"add-{next(made)}", root / "agents.db")  # the SDK's default durability
            spent = sum(loop.timed(lambda: session.add_items(turn)) for _ in range(turns))
            session.close()
            return spent

        add_reps = 3 if quick else 7
        console.print(f"frameworks: agents add_items, {per_turn} items x {turns} turns, {add_reps} rounds")
        samples = rounds({OURS: add_ours, AGENTS_SDK: add_sdk}, add_reps, warmup=1)
    params = {"items_per_turn": per_turn, "turns": turns}
    for peer, values in samples.items():
        results.append(result_of("agents add_items", params, peer, values))
    targets.append(
        judge(
            f"agents add_items {per_turn} x {turns}: JsonlSession (fsync) / SQLiteSession (default)",
            paired(samples[OURS], samples[AGENTS_SDK]),
            1.0,
        )
    )


# -- Google ADK ---------------------------------------------------------------------------------


def _adk_available() -> bool:
    try:
        import google.adk.sessions  # noqa: F401
    except ImportError:
        return False
    return True


def _adk_events(count: int, start: float) -> list[str]:
    from google.adk.events import Event
    from google.genai import types

    made = []
    for n in range(count):
        role = "user" if n % 2 == 0 else "model"
        event = Event(
            id=f"e{n}",
            author="user" if role == "user" else "agent",
            invocation_id=f"inv{n // 2}",
            content=types.Content(role=role, parts=[types.Part(text=f"message {n}: " + "lorem ipsum " * 8)]),
            timestamp=start + n * 0.001,
        )
        made.append(event.model_dump_json(exclude_none=True))
    return made


def _adk(quick: bool, root: Path, results: list[Result], targets: list[Target]) -> dict[str, Any]:
    if not _adk_available():
        console.print("frameworks: google-adk is not installed; its comparisons are skipped")
        return {}
    from google.adk.sessions.base_session_service import GetSessionConfig

    from sessions.integrations.adk import JsonlSessionService

    sizes = (200, 2_000) if quick else (1_000, 10_000, 100_000)
    reps = 5 if quick else 30
    config = GetSessionConfig(num_recent_events=20)
    info: dict[str, Any] = {}
    with _loop() as loop:
        builder = JsonlSessionService(root / "adk", durability="flush")
        start = time.time() - 10 * max(sizes)
        for size in sizes:
            session = loop.run(builder.create_session(app_name="bench", user_id="u", session_id=f"s{size}"))
            stored = builder.store.sync.get_session(session.id)
            assert stored is not None
            parent = stored.head_id
            data = _adk_events(size, start)
            for chunk in range(0, size, 5_000):
                batch = []
                for n, event_json in enumerate(data[chunk : chunk + 5_000], start=chunk):
                    event_id = new_id()
                    batch.append(
                        StoredEvent(
                            id=event_id,
                            session_id=session.id,
                            parent_id=parent,
                            invocation_id=f"inv{n // 2}",
                            event_type="adk_event",
                            event_data=event_json,
                            created_at=utcnow(),
                        )
                    )
                    parent = event_id
                builder.store.sync.append_events(session.id, batch)
        loop.run(builder.close())
        service = JsonlSessionService(root / "adk")
        tasks: dict[str, Callable[[], float]] = {}

        def ours(size: int) -> float:
            return loop.timed(
                lambda: service.get_session(app_name="bench", user_id="u", session_id=f"s{size}", config=config)
            )

        for size in sizes:
            got = loop.run(service.get_session(app_name="bench", user_id="u", session_id=f"s{size}", config=config))
            assert got is not None and len(got.events) == 20 and got.events[-1].id == f"e{size - 1}"
            tasks[f"{OURS} {size}"] = functools.partial(ours, size)
        peer = _adk_database(loop, root, sizes[0], start)
        if peer is not None:
            tasks[ADK_DB] = lambda: loop.timed(
                lambda: peer.get_session(app_name="bench", user_id="u", session_id="db", config=config)
            )
        console.print(f"frameworks: adk get_session(num_recent_events=20), {', '.join(tasks)}, {reps} rounds")
        samples = rounds(tasks, reps, warmup=3)
        loop.run(service.close())
        if peer is not None:
            loop.run(peer.close())
    for name, values in samples.items():
        size = int(name.rsplit(" ", 1)[1]) if name.startswith(OURS) else sizes[0]
        results.append(result_of("adk get_session(num_recent_events=20)", {"events": size}, name.split(" ")[0], values))
    smallest, largest = samples[f"{OURS} {sizes[0]}"], samples[f"{OURS} {sizes[-1]}"]
    targets.append(judge(f"adk get_session(20) flat: {sizes[-1]} / {sizes[0]} events", paired(largest, smallest), 1.5))
    targets.append(
        judge(
            f"adk get_session(20) at {sizes[0]} events: JsonlSessionService / DatabaseSessionService (sqlite)",
            paired(smallest, samples[ADK_DB]) if ADK_DB in samples else [],
            1.0,
        )
    )
    info["log_bytes"] = {str(p.stem): p.stat().st_size for p in (root / "adk" / "sessions").glob("s*.jsonl")}
    return info


def _adk_database(loop: _Loop, root: Path, size: int, start: float) -> Any:
    """ADK's own SQL service on a SQLite file, holding one session of ``size`` events (None if not installed)."""
    try:
        from google.adk.events import Event
        from google.adk.sessions import DatabaseSessionService
    except ImportError:
        console.print("frameworks: ADK's DatabaseSessionService needs sqlalchemy and aiosqlite (the bench extra)")
        return None
    service = DatabaseSessionService(f"sqlite+aiosqlite:///{root / 'adk.db'}")
    session = loop.run(service.create_session(app_name="bench", user_id="u", session_id="db"))
    console.print(f"frameworks: filling ADK's DatabaseSessionService with {size} events (one commit each)")
    for event_json in _adk_events(size, start):
        loop.run(service.append_event(session, Event.model_validate_json(event_json)))
    return service


# -- the event loop while 16 tasks write ------------------------------------------------------


async def _probe(stop: asyncio.Event, lags: list[float]) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append(time.perf_counter() - start - 0.001)


async def _writers(root: Path, tasks: int, turns: int) -> list[float]:
    lags: list[float] = []
    stop = asyncio.Event()
    async with AsyncLocalSessionService.open(root) as store:

        async def agent(n: int) -> None:
            manager = AsyncSessionManager.create_new(store, session_id=f"agent-{n}-{new_id()}")
            for turn in range(turns):
                await manager.append([UserMessage(f"question {turn}"), Text(f"answer {turn} " + "x" * 200)])

        probe = asyncio.create_task(_probe(stop, lags))
        await asyncio.sleep(0.05)
        lags.clear()
        await asyncio.gather(*(agent(n) for n in range(tasks)))
        stop.set()
        await probe
    return lags


async def _idle(seconds: float) -> list[float]:
    lags: list[float] = []
    stop = asyncio.Event()
    probe = asyncio.create_task(_probe(stop, lags))
    await asyncio.sleep(seconds)
    stop.set()
    await probe
    return lags


def _p99(lags: list[float]) -> float:
    return statistics.quantiles(lags, n=100, method="inclusive")[98] if len(lags) > 1 else lags[0]


def _loop_lag(quick: bool, root: Path, results: list[Result], targets: list[Target]) -> None:
    tasks, turns, reps = (16, 10, 2) if quick else (16, 50, 5)
    console.print(f"frameworks: loop lag, {tasks} tasks x {turns} turns through sessions.aio, {reps} rounds")
    p99s: list[float] = []
    idle_p99s: list[float] = []
    every: list[float] = []
    for rep in range(reps):
        lags = asyncio.run(_writers(root / f"lag-{rep}", tasks, turns))
        every += lags
        p99s.append(_p99(lags))
        idle_p99s.append(_p99(asyncio.run(_idle(0.5))))
    results.append(result_of("loop lag p99, 16 writers", {"tasks": tasks, "turns": turns}, OURS, p99s))
    results.append(result_of("loop lag p99, idle", {}, "idle loop", idle_p99s))
    console.print(
        f"frameworks: loop lag over {len(every)} probes: median {statistics.median(every) * 1e3:.3f} ms, "
        f"p99 {_p99(every) * 1e3:.3f} ms, max {max(every) * 1e3:.3f} ms"
    )
    targets.append(judge("loop lag p99 with 16 tasks persisting (ms)", [p * 1e3 for p in p99s], 1.0))
