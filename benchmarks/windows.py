"""Issue #10, long sessions: reading a window at the end of a session costs what the window holds.

*tail*: ``LocalSessionService.load_events(session_id, last=20)`` on sessions of
1,000, 10,000, 100,000 and 1,000,000 small agent events (``--quick``: 200 and
5,000), each session alone in a store built once under ``--cache``
(:func:`benchmarks.fixtures.chat_log`), copied and indexed by the code under
test. In a warm process (one service per store, opened and asked once before
the timed rounds) and in a fresh process (``benchmarks/fresh.py tail``, timed
from opening the store to the answer). Target: flat, the largest at most 1.5 times
the smallest, per round.

*items*: against the OpenAI Agents SDK (``openai-agents``, optional): its
``SQLiteSession.get_items(limit=20)`` on a session of 20,000 message items in a
file database, and ours, the same items stored as events (a ``UserMessage``
per user item, a ``Text`` per assistant item): ``load_events(id, last=20)``
turned back into the same dicts (``deserialize_event``, then a dict per
event), the work an adapter does. Both warm, many interleaved rounds; the
SDK's coroutine timed inside it on one event loop (see
:mod:`benchmarks.peers.agents_sdk`). Also in the rounds, not judged: the SDK's
query run in the calling thread (``sqlite-same-query``). Target: ours at most
1.0 times the SDK.

*compaction*: ``SessionManager.resume(store, stored, from_compaction=True)`` of
a session of 100,000 events whose newest ``Compaction`` is 100 events before
the end (``--quick``: 2,000 and 20), against the full
``SessionManager.resume(store, stored)`` of the same session, a fresh process
each (``benchmarks/fresh.py resume``, timed from opening the store through
``get_session`` to the resumed events). Target: at most 2 % of the full
resume, per round.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import fixtures
from benchmarks.harness import OURS, Result, Target, console, fresh, judge, paired, result_of, rounds, scratch, timed
from benchmarks.peers import agents_sdk
from benchmarks.peers.base import write_history
from benchmarks.workloads import Sizes
from sessions import LocalSessionService

__all__ = ["bench_windows"]


def _warmup(reps: int) -> int:
    """Untimed warm rounds before ``reps`` timed ones."""
    return max(3, reps // 10)


def _prepare(log: fixtures.ChatLog, store: Path, info: dict[str, Any], name: str) -> None:
    """Copy the cached store to ``store`` and let the code under test index it."""
    fixtures.copy_store(log.store, store)
    index_s = fixtures.build_index(store)
    info[name] = {
        "events": log.events,
        "bytes": log.size,
        "fixture_build_s": log.build_s,
        "index_build_s": round(index_s, 2),
    }


def _fresh_tail(store: Path, log: fixtures.ChatLog, last: int) -> dict[str, Any]:
    run = fresh(
        "benchmarks.fresh", json.dumps({"op": "tail", "root": str(store), "session_id": log.session_id, "last": last})
    )
    if run["count"] != min(last, log.events) or run["head"] != log.head_id:
        raise AssertionError(f"load_events(last={last}) in a fresh process: {run}")
    return run


def _fresh_resume(store: Path, log: fixtures.ChatLog, from_compaction: bool) -> dict[str, Any]:
    spec = {"op": "resume", "root": str(store), "session_id": log.session_id, "from_compaction": from_compaction}
    run = fresh("benchmarks.fresh", json.dumps(spec))
    expected = (log.compaction_tail, "Compaction") if from_compaction else (log.events, None)
    if run["count"] != expected[0] or (from_compaction and run["first"] != expected[1]):
        raise AssertionError(f"resume(from_compaction={from_compaction}) in a fresh process: {run}")
    return run


def _tails(
    sizes: Sizes, root: Path, cache: Path, results: list[Result], targets: list[Target], info: dict[str, Any]
) -> None:
    last = sizes.window_last
    counts = sizes.window_events
    logs: dict[int, fixtures.ChatLog] = {}
    stores: dict[int, Path] = {}
    for count in counts:
        console.print(f"windows: the cached session of {count} events (built once under {cache})")
        logs[count] = fixtures.chat_log(cache, count)
        stores[count] = root / f"tail-{count}"
        _prepare(logs[count], stores[count], info, f"tail {count}")
    smallest, largest = min(counts), max(counts)

    console.print(f"windows: load_events(last={last}), warm process, {sizes.window_warm_reps} rounds")
    services = {count: LocalSessionService.open(stores[count]) for count in counts}
    try:
        tasks: dict[str, Callable[[], float]] = {}
        for count, service in services.items():
            got = service.load_events(logs[count].session_id, last=last)
            if len(got) != min(last, count) or got[-1].id != logs[count].head_id:
                raise AssertionError(f"load_events(last={last}) of {count} events gave {len(got)}")
            call = functools.partial(service.load_events, logs[count].session_id, last=last)
            tasks[str(count)] = functools.partial(timed, call)
        warm = rounds(tasks, sizes.window_warm_reps, warmup=_warmup(sizes.window_warm_reps))
    finally:
        for service in services.values():
            service.close()
    for count in counts:
        params = {"events": count, "last": last, "mode": "warm"}
        results.append(result_of("window load_events", params, OURS, warm[str(count)]))
    targets.append(
        judge(
            f"load_events(last={last}), warm process: at {largest} / at {smallest} events",
            paired(warm[str(largest)], warm[str(smallest)]),
            1.5,
        )
    )

    console.print(f"windows: load_events(last={last}), fresh processes, {sizes.window_fresh_reps} rounds")
    fresh_tasks = {str(count): functools.partial(_fresh_tail, stores[count], logs[count], last) for count in counts}
    runs = rounds(fresh_tasks, sizes.window_fresh_reps, warmup=sizes.fresh_warmup)
    whole: dict[int, list[float]] = {}
    for count in counts:
        done = runs[str(count)]
        whole[count] = [r["parts"]["op"] for r in done]
        peaks = [r["rss_bytes"] for r in done if r["rss_bytes"] is not None]
        params = {"events": count, "last": last, "mode": "fresh"}
        results.append(
            result_of("window load_events", {**params, "timed": "open+load"}, OURS, whole[count], peaks or None)
        )
        calls = [r["parts"]["call"] for r in done]
        results.append(result_of("window load_events", {**params, "timed": "load"}, OURS, calls))
    targets.append(
        judge(
            f"load_events(last={last}), fresh process (open + load): at {largest} / at {smallest} events",
            paired(whole[largest], whole[smallest]),
            1.5,
        )
    )


def _compaction(
    sizes: Sizes, root: Path, cache: Path, results: list[Result], targets: list[Target], info: dict[str, Any]
) -> None:
    count, tail = sizes.compaction_events, sizes.compaction_tail
    console.print(f"windows: the cached session of {count} events, newest compaction {tail} from the end")
    log = fixtures.chat_log(cache, count, compaction_tail=tail)
    store = root / "compaction"
    _prepare(log, store, info, f"compaction {count}")
    console.print(f"windows: resume from the compaction and in full, fresh processes, {sizes.compaction_reps} rounds")
    tasks = {
        "window": functools.partial(_fresh_resume, store, log, True),
        "full": functools.partial(_fresh_resume, store, log, False),
    }
    runs = rounds(tasks, sizes.compaction_reps, warmup=sizes.fresh_warmup)
    whole: dict[str, list[float]] = {}
    calls: dict[str, list[float]] = {}
    for name, from_compaction in (("window", True), ("full", False)):
        done = runs[name]
        whole[name] = [r["parts"]["op"] for r in done]
        calls[name] = [r["parts"]["call"] for r in done]
        peaks = [r["rss_bytes"] for r in done if r["rss_bytes"] is not None]
        params = {"events": count, "from_compaction": from_compaction, "mode": "fresh"}
        timed_part = "open+get_session+resume"
        results.append(result_of("window resume", {**params, "timed": timed_part}, OURS, whole[name], peaks or None))
        results.append(result_of("window resume", {**params, "timed": "resume"}, OURS, calls[name]))
    name = f"resume of {count} events from the compaction {tail} before the end / full resume, fresh process"
    targets.append(judge(f"{name} (open + get_session + resume)", paired(whole["window"], whole["full"]), 0.02))
    targets.append(judge(f"{name} (the resume call)", paired(calls["window"], calls["full"]), 0.02))


def _items(sizes: Sizes, root: Path, results: list[Result], targets: list[Target], info: dict[str, Any]) -> None:
    count, last = sizes.sdk_items, sizes.window_last
    params = {"items": count, "last": last, "mode": "warm"}
    items = agents_sdk.chat_items(count)
    expected = items[-last:]
    console.print(f"windows: {count} items, ours and the OpenAI Agents SDK's SQLiteSession")
    (root / "items").mkdir()
    with LocalSessionService.open(root / "items", durability="flush") as writer:
        session_id = write_history(writer, agents_sdk.to_events(items))
    service = LocalSessionService.open(root / "items")
    closers: list[Callable[[], None]] = [service.close]
    try:

        def ours() -> list[dict[str, str]]:
            return agents_sdk.as_items(service.load_events(session_id, last=last))

        tasks: dict[str, Callable[[], float]] = {OURS: functools.partial(timed, ours)}
        answers: dict[str, list[Any]] = {OURS: ours()}
        if agents_sdk.available():
            db = root / "agents.db"
            sdk = agents_sdk.AgentsSession(db, session_id)
            closers.append(sdk.close)
            sdk.add(items)
            same = agents_sdk.SameQuery(db, session_id)
            closers.append(same.close)
            tasks[agents_sdk.NAME] = lambda: sdk.get(last)[0]
            tasks[agents_sdk.SAME_QUERY] = functools.partial(timed, functools.partial(same.get, last))
            answers[agents_sdk.NAME] = sdk.get(last)[1]
            answers[agents_sdk.SAME_QUERY] = same.get(last)
            info["items"] = {"items": count, "ours_bytes": _log_bytes(root / "items"), "sqlite_bytes": _db_bytes(db)}
        else:
            results.append(
                Result(workload="window items", params=params, peer=agents_sdk.NAME, note=agents_sdk.MISSING)
            )
            note = "runs on the SDK's database; openai-agents is not installed"
            results.append(Result(workload="window items", params=params, peer=agents_sdk.SAME_QUERY, note=note))
        for peer, got in answers.items():
            if got != expected:
                raise AssertionError(f"{peer}: the last {last} items differ from those stored")
        console.print(f"windows: last {last} items, warm, {sizes.sdk_reps} rounds of {', '.join(tasks)}")
        samples = rounds(tasks, sizes.sdk_reps, warmup=_warmup(sizes.sdk_reps))
    finally:
        for close in reversed(closers):
            close()
    for peer, values in samples.items():
        results.append(result_of("window items", params, peer, values))
    sdk_samples = samples.get(agents_sdk.NAME, [])
    targets.append(
        judge(
            f"last {last} of {count} items as dicts, warm: ours (load_events + typing) / SDK SQLiteSession.get_items",
            paired(samples[OURS], sdk_samples) if sdk_samples else [],
            1.0,
        )
    )


def _log_bytes(store: Path) -> int:
    return sum(p.stat().st_size for p in (store / "sessions").glob("*.jsonl"))


def _db_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))


def bench_windows(
    sizes: Sizes, base: Path, cache: Path, results: list[Result], targets: list[Target]
) -> dict[str, Any]:
    """The three measurements of issue #10; returns the fixtures' figures (for the report's ``info``)."""
    info: dict[str, Any] = {}
    with scratch(base, "windows") as root:
        _tails(sizes, root, cache, results, targets, info)
        _compaction(sizes, root, cache, results, targets, info)
        _items(sizes, root, results, targets, info)
    return info
