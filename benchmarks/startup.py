"""Issue #9, agent start-up end to end: each start in a fresh process, against the SQLite reference.

A store holds one session of N events in the agent's folder (with a server id
and the two metadata blobs). Each repetition is a new interpreter
(``benchmarks/fresh.py startup``) that opens the store, finds the folder's
session (``find_resumable(directory, git_root, 3600)``), resumes it
(``SessionManager.resume``): *load*; then writes one 10-event turn as an agent
does after each prompt: ``persist_events`` of the whole conversation plus 10
new events, ``persist_server_session_id`` and two ``set_metadata`` blobs of a
few KB, all different from the stored ones: *turn* (in ``SessionManager.batch()``
where the library has it). *Total* is load + turn; ``close`` is reported on its
own. The SQLite peer is the reference (WAL, ``synchronous=FULL``, one
transaction per event, as the reference application writes) driven by the same
``SessionManager`` with the same events. Sessions grow by one turn a
repetition; every size and peer runs once a round, in rotating order.
"""

from __future__ import annotations

import functools
import itertools
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.harness import OURS, SQLITE, Result, Target, console, fresh, judge, paired, result_of, rounds, scratch
from benchmarks.peers.base import PROJECT, write_history
from benchmarks.peers.sqlite_ref import SQLiteSessionService
from benchmarks.workloads import Sizes, events_for, metadata_blobs
from sessions import LocalSessionService, SessionService

__all__ = ["bench_startup"]

PARTS = ("total", "load", "turn", "close")


def _fill(service: SessionService, count: int) -> None:
    """One session of ``count`` events in ``PROJECT``, with a server id and the two metadata blobs."""
    session_id = write_history(service, events_for(count))
    service.update_server_session_id(session_id, "srv-0")
    for key, value in metadata_blobs(random.Random(0)).items():
        service.set_metadata(session_id, key, value)


def _populate(peer: str, root: Path, count: int) -> None:
    if peer == OURS:
        with LocalSessionService.open(root, durability="flush") as ours:
            _fill(ours, count)
    else:
        sqlite = SQLiteSessionService(root / "sessions.db", durability="flush", per_event=False)
        _fill(sqlite, count)
        sqlite.close()


def _start(peer: str, root: Path, seeds: Iterator[int]) -> dict[str, Any]:
    spec = {"op": "startup", "peer": peer, "root": str(root), "directory": PROJECT, "seed": next(seeds)}
    return fresh("benchmarks.fresh", json.dumps(spec))


def bench_startup(sizes: Sizes, base: Path, results: list[Result], targets: list[Target]) -> None:
    counts = sizes.startup_events
    seeds = itertools.count(1)
    with scratch(base, "startup") as root:
        tasks = {}
        for count in counts:
            console.print(f"startup: populating sessions of {count} events")
            for peer in (OURS, SQLITE):
                folder = root / f"{peer}-{count}"
                folder.mkdir()
                _populate(peer, folder, count)
                tasks[(peer, count)] = functools.partial(_start, peer, folder, seeds)
        console.print(f"startup: {sizes.startup_reps} rounds of {len(tasks)} fresh processes")
        runs = rounds(
            {f"{p} {c}": task for (p, c), task in tasks.items()}, sizes.startup_reps, warmup=sizes.fresh_warmup
        )
    parts: dict[tuple[str, int, str], list[float]] = {}
    for (peer, count), name in zip(tasks, runs, strict=True):
        for run in runs[name]:
            times = run["parts"]
            times["total"] = times["load"] + times["turn"]
            for part in PARTS:
                parts.setdefault((peer, count, part), []).append(times[part])
    for count in counts:
        for part in PARTS:
            for peer in (OURS, SQLITE):
                results.append(result_of("startup", {"events": count, "part": part}, peer, parts[peer, count, part]))
    for count in counts:
        targets.append(
            judge(
                f"startup {count} events, fresh process: ours / SQLite, total (load + turn)",
                paired(parts[OURS, count, "total"], parts[SQLITE, count, "total"]),
                0.5,
            )
        )
    smallest, largest = min(counts), max(counts)
    targets.append(
        judge(
            f"startup turn: ours at {largest} / ours at {smallest} events",
            paired(parts[OURS, largest, "turn"], parts[OURS, smallest, "turn"]),
            1.5,
        )
    )
