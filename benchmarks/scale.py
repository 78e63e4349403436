"""Issue #9, size independence: one very large log, and stores of many sessions.

*biglog*: a store of one log of about 1 GiB (about a million small chat events;
``--quick``: 20 MiB), its index built once by the code under test. Each
repetition is a fresh process (``benchmarks/fresh.py``) doing one operation:
the first append (``get_session`` for the head, then ``append_event`` after
it), ``get_session``, ``set_metadata`` of a few KB. Timed from opening the
store to the answer (``close`` reported on its own), with the peak resident
memory above the process's own before opening the store.

*scale*: stores of 100 and 100,000 sessions (``--quick``: 20 and 1,000) and
of 10,000 for the cold find, with an SQLite reference twin holding the same
sessions. Cold ``list_sessions`` (large store) and ``find_resumable``
(10,000 and large) in fresh processes (``benchmarks/cold.py``), ours and the
reference; then ``archive``, ``set_metadata`` and ``create_session`` at the small
and at the large store, each in a fresh process timed from opening the store
to the end of ``close`` (what ``sessions archive`` pays; a library may defer
work to ``close``), and again in a warm process that already answered a
``find_resumable`` (what a running agent pays), each repetition on another
session.
"""

from __future__ import annotations

import functools
import itertools
import json
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

from benchmarks import fixtures
from benchmarks.fresh import turn_metadata
from benchmarks.harness import (
    OURS,
    SQLITE,
    Result,
    Target,
    console,
    fresh,
    judge,
    paired,
    result_of,
    rounds,
    scratch,
    timed,
)
from benchmarks.workloads import Sizes
from sessions import LocalSessionService

__all__ = ["bench_biglog", "bench_scale"]

FIND_MAX_AGE: Final = 10 * 365 * 86400.0
"""Cached stores are older than an hour: find among every session, not only the last hour's."""
BIGLOG_OPS: Final = ("append", "get", "meta")
WRITE_OPS: Final = ("archive", "meta", "create")
_OP_NAMES: Final = {
    "append": "first append",
    "get": "get_session",
    "meta": "set_metadata",
    "archive": "archive",
    "create": "create_session",
}
_MB: Final = 1e6


def _one(op: str, root: Path, session_ids: Iterator[str], directory: str, seeds: Iterator[int]) -> dict[str, Any]:
    spec = {"op": op, "root": str(root), "session_id": next(session_ids), "directory": directory, "seed": next(seeds)}
    return fresh("benchmarks.fresh", json.dumps(spec))


def bench_biglog(sizes: Sizes, base: Path, cache: Path, results: list[Result], targets: list[Target]) -> dict[str, Any]:
    """The three operations on the one large log; returns the fixture's figures (for the report's ``info``)."""
    console.print(f"biglog: the cached {sizes.biglog_bytes >> 20} MiB log (built once under {cache})")
    log = fixtures.big_log(cache, sizes.biglog_bytes)
    size_mb = round(log.size / _MB)
    info: dict[str, Any] = {"bytes": log.size, "events": log.events, "fixture_build_s": log.build_s}
    seeds = itertools.count(1)
    with scratch(base, "biglog") as root:
        store = root / "store"
        fixtures.copy_store(log.store, store)
        info["index_build_s"] = round(fixtures.build_index(store), 2)
        console.print(f"biglog: index built in {info['index_build_s']} s; {sizes.biglog_reps} rounds")
        tasks = {
            op: functools.partial(_one, op, store, itertools.repeat(log.session_id), log.directory, seeds)
            for op in BIGLOG_OPS
        }
        runs = rounds(tasks, sizes.biglog_reps, warmup=sizes.fresh_warmup)
    for op in BIGLOG_OPS:
        times = [run["parts"]["op"] for run in runs[op]]
        peaks = [run["rss_bytes"] for run in runs[op] if run["rss_bytes"] is not None]
        params = {"log_mb": size_mb, "op": op}
        results.append(result_of("biglog", {**params, "timed": "open+op"}, OURS, times, peaks or None))
        closes = [run["parts"]["close"] for run in runs[op]]
        results.append(result_of("biglog", {**params, "timed": "close"}, OURS, closes))
        name = f"{size_mb} MB log, fresh process, {_OP_NAMES[op]}"
        targets.append(judge(f"{name}: ms (open + op)", [t * 1e3 for t in times], 10.0))
        targets.append(judge(f"{name}: peak RSS above the process's baseline, MB", [p / _MB for p in peaks], 50.0))
    return info


class _Picker:
    """Sessions of a store to act on, one after another (cycling when a small store runs out)."""

    def __init__(self, fixture: fixtures.ManySessions, seed: int) -> None:
        ids = list(fixture.unarchived)
        random.Random(seed).shuffle(ids)
        self.ids = itertools.cycle(ids)
        self.directories = itertools.cycle([fixture.directory(i) for i in range(fixture.directories)])


def _warm(service: LocalSessionService, op: str, picker: _Picker, seeds: Iterator[int]) -> float:
    """One operation in an open store (ids, values prepared first); its seconds."""
    seed = next(seeds)
    rng = random.Random(seed)
    if op == "create":
        session_id, directory = fixtures.uuid7(rng, time.time_ns() // 1_000_000), next(picker.directories)
        return timed(lambda: service.create_session(session_id, directory, directory))
    session_id = next(picker.ids)
    if op == "archive":
        return timed(lambda: service.archive(session_id))
    value = turn_metadata(rng, seed)["file_read_tracker"]
    return timed(lambda: service.set_metadata(session_id, "file_read_tracker", value))


def _cold_query(peer: str, root: Path, op: str, directory: str) -> dict[str, Any]:
    return fresh("benchmarks.cold", peer, str(root), op, directory, str(FIND_MAX_AGE))


def bench_scale(sizes: Sizes, base: Path, cache: Path, results: list[Result], targets: list[Target]) -> dict[str, Any]:
    """Cold list and find against SQLite; the writes at a small and a large store. Returns fixture figures."""
    small, large = sizes.scale_sessions
    find = sizes.scale_find_sessions
    counts = sorted({small, find, large})
    info: dict[str, Any] = {}
    seeds = itertools.count(1)
    with scratch(base, "scale") as root:
        stores: dict[int, Path] = {}
        twins: dict[int, Path] = {}
        pickers: dict[int, _Picker] = {}
        for count in counts:
            console.print(f"scale: the cached store of {count} sessions (built once under {cache})")
            fixture = fixtures.many_sessions(cache, count, sizes.directories)
            stores[count], twins[count] = root / f"ours-{count}", root / f"sqlite-{count}"
            fixtures.copy_store(fixture.ours, stores[count])
            fixtures.copy_store(fixture.sqlite, twins[count])
            pickers[count] = _Picker(fixture, count)
            info[str(count)] = {
                "fixture_build_s": fixture.build_s,
                "index_build_s": round(fixtures.build_index(stores[count]), 2),
            }
        target_dir = fixture.directory(1)  # also the git root of its sessions: both ways of matching

        console.print(f"scale: cold list_sessions ({large}) and find_resumable ({find}, {large}), ours and SQLite")
        queries: dict[tuple[str, str, int], Callable[[], dict[str, Any]]] = {}
        for peer, where in ((OURS, stores), (SQLITE, twins)):
            queries[peer, "list_sessions", large] = functools.partial(
                _cold_query, peer, where[large], "list_sessions", target_dir
            )
            for count in sorted({find, large}):
                queries[peer, "find_resumable", count] = functools.partial(
                    _cold_query, peer, where[count], "find_resumable", target_dir
                )
        answers = rounds(
            {" ".join(map(str, key)): q for key, q in queries.items()}, sizes.scale_reps, warmup=sizes.fresh_warmup
        )
        cold: dict[tuple[str, str, int], list[float]] = {}
        for key, name in zip(queries, answers, strict=True):
            cold[key] = [a["seconds"] for a in answers[name]]
            if key[1] == "find_resumable" and any(a["answer"] is None for a in answers[name]):
                raise AssertionError(f"{key}: find_resumable found nothing in {target_dir}")
        for (peer, op, count), samples in cold.items():
            results.append(result_of(f"scale {op}", {"sessions": count, "mode": "cold"}, peer, samples))
        targets.append(
            judge(
                f"cold list_sessions at {large} sessions: ours / SQLite",
                paired(cold[OURS, "list_sessions", large], cold[SQLITE, "list_sessions", large]),
                1.0,
            )
        )
        targets.append(
            judge(
                f"cold find_resumable at {find} sessions: ours, ms",
                [s * 1e3 for s in cold[OURS, "find_resumable", find]],
                10.0,
            )
        )

        console.print(f"scale: {', '.join(WRITE_OPS)} at {small} and {large} sessions, fresh processes")
        writes = {
            f"{op} {count}": functools.partial(_cold_write, op, stores[count], pickers[count], seeds)
            for op in WRITE_OPS
            for count in (small, large)
        }
        runs = rounds(writes, sizes.scale_reps, warmup=sizes.fresh_warmup)
        for op in WRITE_OPS:
            whole = {}
            for count in (small, large):
                done = runs[f"{op} {count}"]
                whole[count] = [r["parts"]["op"] + r["parts"]["close"] for r in done]
                params = {"sessions": count, "mode": "cold"}
                results.append(result_of(f"scale {op}", {**params, "timed": "open+op+close"}, OURS, whole[count]))
                ops = [r["parts"]["op"] for r in done]
                results.append(result_of(f"scale {op}", {**params, "timed": "open+op"}, OURS, ops))
            targets.append(
                judge(
                    f"{_OP_NAMES[op]} at {large} / at {small} sessions, fresh process (open + op + close)",
                    paired(whole[large], whole[small]),
                    1.5,
                )
            )

        console.print(f"scale: {', '.join(WRITE_OPS)} at {small} and {large} sessions, warm process")
        services = {count: LocalSessionService.open(stores[count]) for count in (small, large)}
        try:
            for count, service in services.items():
                directory = pickers[count].directories
                first = next(directory)
                service.find_resumable(first, first, FIND_MAX_AGE)
            warm_tasks = {
                f"{op} {count}": functools.partial(_warm, services[count], op, pickers[count], seeds)
                for op in WRITE_OPS
                for count in (small, large)
            }
            warm = rounds(warm_tasks, sizes.scale_reps, warmup=1)
        finally:
            for service in services.values():
                service.close()
        for op in WRITE_OPS:
            for count in (small, large):
                samples = warm[f"{op} {count}"]
                results.append(result_of(f"scale {op}", {"sessions": count, "mode": "warm"}, OURS, samples))
            targets.append(
                judge(
                    f"{_OP_NAMES[op]} at {large} / at {small} sessions, warm process",
                    paired(warm[f"{op} {large}"], warm[f"{op} {small}"]),
                    1.5,
                )
            )
    return info


def _cold_write(op: str, root: Path, picker: _Picker, seeds: Iterator[int]) -> dict[str, Any]:
    return _one(op, root, picker.ids, next(picker.directories), seeds)
