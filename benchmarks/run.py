"""Measure jsonl-sessions against its peers and the physical floors, in one run.

Usage: ``python benchmarks/run.py [--quick] [--json PATH] [--dir DIR] [--cache DIR] [--only SECTION ...]``.

Sections, in the order they run: ``startup`` (issue #9: agent start-up in a
fresh process), ``persist``, ``floor`` (issue #9: one event against the raw
write floors), ``resume``, ``store`` (issue #5), ``scale`` and ``biglog``
(issue #9: stores of many sessions, one very large log), ``windows`` (issue
#10: the last events of long sessions, against the OpenAI Agents SDK, and a
resume from a compaction), ``imports`` (issue #11: resuming an imported Claude
Code session against parsing its source; importing the real transcripts).
``scale``, ``biglog`` and ``windows`` build their large stores once under
``--cache`` and reuse them.

Repetitions of the peers are interleaved (the machine is shared and noisy), a
warm-up precedes them, and medians, quartiles and p95 are reported with ratios
measured in the same run. ``--quick`` shrinks every size so the script finishes
in seconds; its timings are not meant to be judged.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import itertools
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec
from rich.table import Table

from benchmarks.fixtures import DEFAULT_CACHE
from benchmarks.frameworks import bench_frameworks
from benchmarks.harness import (
    FLOOR,
    OURS,
    Report,
    Result,
    Target,
    console,
    judge,
    paired,
    result_of,
    rounds,
    scratch,
    timed,
)
from benchmarks.imports import bench_imports
from benchmarks.machine import describe_machine
from benchmarks.peers import Peer, SessionSpec, Store, all_peers
from benchmarks.peers.base import Persist
from benchmarks.scale import bench_biglog, bench_scale
from benchmarks.search import bench_search
from benchmarks.startup import bench_startup
from benchmarks.windows import bench_windows
from benchmarks.workloads import FULL, QUICK, Sizes, events_for, metadata_blobs, turn
from eventlog import new_id
from sessions import ConversationEvent

SECTIONS = (
    "startup",
    "persist",
    "floor",
    "resume",
    "store",
    "scale",
    "biglog",
    "windows",
    "imports",
    "frameworks",
    "search",
)
"""Every section, in the order a run takes them."""


def _untimed(calls: Mapping[str, Callable[[], object]]) -> dict[str, Callable[[], Callable[[], object]]]:
    """Calls that need no untimed set-up before each repetition."""
    return {name: functools.partial(_same, call) for name, call in calls.items()}


def _same(call: Callable[[], object]) -> Callable[[], object]:
    return call


def _next_turn(prepare: Persist, turns: Iterator[list[ConversationEvent]]) -> Callable[[], object]:
    return prepare(list(next(turns)))


def _interleaved(
    calls: Mapping[str, Callable[[], Callable[[], object]]], reps: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Time each peer's call ``reps`` times, rotating the order every round.

    ``calls`` maps a peer to a function returning the call to time (set-up is not timed).
    """
    return rounds({name: functools.partial(_time_prepared, prepare) for name, prepare in calls.items()}, reps, warmup)


def _time_prepared(prepare: Callable[[], Callable[[], object]]) -> float:
    return timed(prepare())


def _record(results: list[Result], workload: str, params: dict[str, Any], samples: dict[str, list[float]]) -> None:
    for peer, values in samples.items():
        results.append(result_of(workload, params, peer, values))


def bench_persist(peers: list[Peer], sizes: Sizes, base: Path, results: list[Result]) -> None:
    for durability in ("fsync", "flush"):
        for events in (1, 10):
            params = {"events": events, "durability": durability}
            console.print(f"persist {params}")
            with scratch(base, "persist") as root:
                persisters = {}
                for peer in peers:
                    (root / peer.name).mkdir()
                    try:
                        persisters[peer.name] = peer.persister(root / peer.name, durability)
                    except NotImplementedError as exc:
                        results.append(Result(workload="persist", params=params, peer=peer.name, note=str(exc)))
                rng = random.Random(events)
                turns = itertools.cycle([turn(rng, events) for _ in range(4)])
                calls = {name: functools.partial(_next_turn, p, turns) for name, p in persisters.items()}
                samples = _interleaved(calls, sizes.persist_reps, warmup=3)
            _record(results, "persist", params, samples)


def bench_floor(peers: list[Peer], sizes: Sizes, base: Path, results: list[Result], targets: list[Target]) -> None:
    """Issue #9: one event persisted through the manager against the raw write (and write+fsync) of the same bytes."""
    by_name = {peer.name: peer for peer in peers}
    for durability, limit, floor in (("flush", 3.0, "raw write"), ("fsync", 1.2, "raw write+fsync")):
        params = {"events": 1, "durability": durability}
        console.print(f"persist against the floor {params}")
        with scratch(base, "floor") as root:
            persisters = {}
            for name in (OURS, FLOOR):
                (root / name).mkdir()
                persisters[name] = by_name[name].persister(root / name, durability)
            rng = random.Random(1)
            turns = itertools.cycle([turn(rng, 1) for _ in range(4)])
            calls = {name: functools.partial(_next_turn, p, turns) for name, p in persisters.items()}
            samples = _interleaved(calls, sizes.floor_reps, warmup=10)
        _record(results, "persist-floor", params, samples)
        targets.append(
            judge(
                f"persist 1 event, {durability}: ours / {floor} floor",
                paired(samples[OURS], samples[FLOOR]),
                limit,
            )
        )


def _peak(call: Callable[[], object]) -> tuple[int, int]:
    """Peak and retained bytes Python allocated during ``call`` (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    kept = call()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del kept
    return peak - base, current - base


def bench_resume(peers: list[Peer], sizes: Sizes, base: Path, results: list[Result]) -> None:
    resume_peers = [p for p in peers if p.name != "sqlite-batched"]  # same stored rows as sqlite-ref
    for count in sizes.resume_events:
        params = {"events": count}
        console.print(f"resume {params}")
        events = events_for(count)
        with scratch(base, "resume") as root:
            resumers = {}
            for peer in resume_peers:
                (root / peer.name).mkdir()
                try:
                    resumers[peer.name] = peer.resumer(root / peer.name, events)
                except NotImplementedError as exc:
                    results.append(Result(workload="resume", params=params, peer=peer.name, note=str(exc)))
            for name, resume in resumers.items():
                got = resume()
                if len(got) != count or got[-1] != events[-1]:
                    raise AssertionError(f"{name} resumed {len(got)} events, not the {count} stored")
            samples = _interleaved(_untimed(resumers), sizes.resume_reps, warmup=0)
            _record(results, "resume", params, samples)
            decoded = _peak(resumers[FLOOR])[1]
            for result in results[-len(resumers) :]:
                result.peak_bytes = _peak(resumers[result.peer])[0]
            results.append(Result(workload="resume-decoded-size", params=params, peer=FLOOR, peak_bytes=decoded))
        del events


def _specs(count: int, sizes: Sizes) -> list[SessionSpec]:
    rng = random.Random(count)
    pool = [turn(rng, sizes.session_events) for _ in range(32)]
    blobs = metadata_blobs(rng)
    specs = []
    for i in range(count):
        directory = f"/home/user/project-{i % sizes.directories}"
        specs.append(
            SessionSpec(
                id=new_id(),
                directory=directory,
                git_root=directory if i % 3 else None,
                events=list(pool[i % len(pool)]),
                metadata=blobs,
                archived=i % 10 == 0,
            )
        )
    return specs


def _query(store: Store, op: str, directory: str) -> object:
    return store.find_resumable(directory, directory, 3600.0) if op == "find_resumable" else store.list_sessions()


def _cold(peer: str, root: Path, op: str, directory: str) -> float:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.cold", peer, str(root), op, directory],
        check=True,
        capture_output=True,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    seconds = msgspec.json.decode(out)["seconds"]
    assert isinstance(seconds, float)
    return seconds


def bench_store(peers: list[Peer], sizes: Sizes, base: Path, results: list[Result]) -> None:
    store_peers = [p for p in peers if p.name not in ("sqlite-batched", FLOOR)]
    counts = sorted({*sizes.store_sessions, sizes.verify_sessions})
    for count in counts:
        console.print(f"store of {count} sessions: populating")
        specs = _specs(count, sizes)
        target = specs[-2].directory
        with scratch(base, "store") as root:
            stores = {}
            for peer in store_peers:
                (root / peer.name).mkdir()
                try:
                    peer.populate(root / peer.name, specs)
                    stores[peer.name] = peer.open_store(root / peer.name)
                except NotImplementedError as exc:
                    for workload in ("find_resumable", "list_sessions", "verify", "reindex"):
                        results.append(
                            Result(workload=workload, params={"sessions": count}, peer=peer.name, note=str(exc))
                        )
            answers = {name: store.find_resumable(target, target, 3600.0) for name, store in stores.items()}
            # Whole-second timestamps give the SQLite reference no tie-break (its defect 5), so only
            # the peers with finer clocks must agree on which session is the newest.
            exact = {answers.get(name) for name in (OURS, "naive-jsonl") if name in answers}
            if len(exact) != 1 or None in answers.values():
                raise AssertionError(f"peers disagree on find_resumable: {answers}")
            if count in sizes.store_sessions:
                console.print(f"store of {count} sessions: find_resumable, list_sessions")
                for op in ("find_resumable", "list_sessions"):
                    queries = {n: functools.partial(_query, s, op, target) for n, s in stores.items()}
                    warm = _interleaved(_untimed(queries), sizes.store_reps)
                    _record(results, op, {"sessions": count, "mode": "warm"}, warm)
                    cold: dict[str, list[float]] = {name: [] for name in stores}
                    for _ in range(sizes.cold_reps):
                        for name in stores:
                            cold[name].append(_cold(name, root / name, op, target))
                    _record(results, op, {"sessions": count, "mode": "cold"}, cold)
            if count == sizes.verify_sessions:
                console.print(f"store of {count} sessions: verify, reindex")
                verify = _interleaved(_untimed({n: s.verify_all for n, s in stores.items()}), 3, warmup=0)
                _record(results, "verify", {"sessions": count}, verify)
                reindexable = {}
                for name, store in stores.items():
                    try:
                        store.reindex()
                        reindexable[name] = store
                    except NotImplementedError as exc:
                        results.append(Result(workload="reindex", params={"sessions": count}, peer=name, note=str(exc)))
                reindex = _interleaved(_untimed({n: s.reindex for n, s in reindexable.items()}), 3, warmup=0)
                _record(results, "reindex", {"sessions": count}, reindex)
            for store in stores.values():
                store.close()


def _median(results: list[Result], workload: str, peer: str, **params: Any) -> float | None:
    for r in results:
        if r.workload == workload and r.peer == peer and all(r.params.get(k) == v for k, v in params.items()):
            return r.median_s
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def targets(results: list[Result], sizes: Sizes) -> list[Target]:
    """The issue's targets, judged on this run's medians."""
    out: list[Target] = []

    def add(name: str, value: float | None, limit: float, kind: str) -> None:
        met = None if value is None else (value <= limit if kind == "max" else value >= limit)
        out.append(Target(name=name, value=value, limit=limit, kind=kind, met=met))

    def persist(peer: str, events: int, durability: str) -> float | None:
        return _median(results, "persist", peer, events=events, durability=durability)

    ours_1 = persist(OURS, 1, "fsync")
    add("persist 1 event fsync: ours / write+fsync floor", _ratio(ours_1, persist(FLOOR, 1, "fsync")), 1.2, "max")
    add("persist 1 event fsync: ours / SQLite FULL", _ratio(ours_1, persist("sqlite-ref", 1, "fsync")), 1.0, "max")
    add(
        "persist 10 events fsync: ours / SQLite per-event (reference)",
        _ratio(persist(OURS, 10, "fsync"), persist("sqlite-ref", 10, "fsync")),
        0.25,
        "max",
    )
    for events in (1, 10):
        for peer in ("sqlite-ref", "sqlite-batched"):
            add(
                f"persist {events} event(s) flush: ours / {peer} NORMAL",
                _ratio(persist(OURS, events, "flush"), persist(peer, events, "flush")),
                1.0,
                "max",
            )
    for count in sizes.resume_events:
        ours = _median(results, "resume", OURS, events=count)
        sqlite = _median(results, "resume", "sqlite-ref", events=count)
        add(f"resume {count}: SQLite / ours (speed-up)", _ratio(sqlite, ours), 2.5, "min")
        floor = _median(results, "resume", FLOOR, events=count)
        add(f"resume {count}: floor / ours (fraction of floor speed)", _ratio(floor, ours), 0.7, "min")
        peaks = {
            r.workload: r.peak_bytes
            for r in results
            if r.params.get("events") == count
            and (r.peer, r.workload) in ((OURS, "resume"), (FLOOR, "resume-decoded-size"))
        }
        add(
            f"resume {count}: peak memory / decoded events",
            _ratio(peaks.get("resume"), peaks.get("resume-decoded-size")),
            1.5,
            "max",
        )
    largest = max(sizes.store_sessions)
    for mode in ("cold", "warm"):
        ours = _median(results, "find_resumable", OURS, sessions=largest, mode=mode)
        naive = _median(results, "find_resumable", "naive-jsonl", sessions=largest, mode=mode)
        add(f"find_resumable {largest} {mode}: naive / ours (speed-up)", _ratio(naive, ours), 100.0, "min")
    cold = _median(results, "find_resumable", OURS, sessions=largest, mode="cold")
    add(f"find_resumable {largest} cold: ours (ms)", None if cold is None else cold * 1e3, 20.0, "max")
    return out


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def _fmt_span(low: float | None, high: float | None) -> str:
    """``low-high`` seconds, in one unit where both ends have the same."""
    if low is None or high is None:
        return ""
    units = [(1e6, "µs", 0) if x < 1e-3 else (1e3, "ms", 2) if x < 1 else (1.0, "s", 2) for x in (low, high)]
    (scale, unit, digits), (high_scale, high_unit, high_digits) = units
    if unit == high_unit:
        return f"{low * scale:.{digits}f}-{high * scale:.{digits}f} {unit}"
    return f"{low * scale:.{digits}f} {unit}-{high * high_scale:.{high_digits}f} {high_unit}"


def _fmt_value(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _fmt_values(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f"{low:.3f}-{high:.3f}"


def print_report(report: Report) -> None:
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in report.results:
        if r.workload != "resume-decoded-size":
            groups.setdefault((r.workload, msgspec.json.encode(r.params).decode()), []).append(r)
    for (workload, params), rows in groups.items():
        ours = next((r.median_s for r in rows if r.peer == OURS), None)
        table = Table(title=f"{workload} {params}", title_justify="left")
        for column in ("peer", "median", "q1-q3", "min-max", "p95", "ours / peer", "peak MiB"):
            table.add_column(column, justify="left" if column == "peer" else "right")
        notes = [f"{r.peer}: {r.note}" for r in rows if r.note is not None]
        if notes:
            table.caption = "n/a: " + "; ".join(notes)
            table.caption_justify = "left"
        for r in rows:
            ratio = _ratio(ours, r.median_s)
            peak = f"{r.peak_bytes / 2**20:.1f}" if r.peak_bytes is not None else ""
            if r.peak_max_bytes is not None:
                peak += f" (max {r.peak_max_bytes / 2**20:.1f})"
            table.add_row(
                r.peer,
                _fmt_time(r.median_s),
                _fmt_span(r.q1_s, r.q3_s),
                _fmt_span(r.min_s, r.max_s),
                _fmt_time(r.p95_s),
                f"{ratio:.3f}" if ratio is not None else "",
                peak,
            )
        console.print(table)
    table = Table(title="targets", title_justify="left")
    for column in ("target", "value", "q1-q3", "min-max", "limit", "met"):
        table.add_column(column)
    for t in report.targets:
        met = "n/a" if t.met is None else ("yes" if t.met else "NO")
        table.add_row(
            t.name,
            _fmt_value(t.value),
            _fmt_values(t.q1, t.q3),
            _fmt_values(t.low, t.high),
            f"{'≤' if t.kind == 'max' else '≥'} {t.limit}",
            met,
        )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke test (timings not meaningful)")
    parser.add_argument("--json", type=Path, help="write the results as JSON to this file")
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory (default: the system temp dir)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=DEFAULT_CACHE,
        help=f"where the large stores of scale, biglog and windows are built once and kept (default: {DEFAULT_CACHE})",
    )
    parser.add_argument(
        "--only", choices=SECTIONS, action="append", help="run only these sections (repeatable; default: all)"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    peers = all_peers()
    machine = describe_machine(args.dir or Path(tempfile.gettempdir()))
    console.print("[bold]machine[/bold]")
    for key, value in machine.items():
        console.print(f"  {key}: {value}")
    results: list[Result] = []
    issue9: list[Target] = []
    issue10: list[Target] = []
    issue12: list[Target] = []
    issue11: list[Target] = []
    issue13: list[Target] = []
    info: dict[str, Any] = {}
    only = set(args.only or SECTIONS)
    base = Path(tempfile.mkdtemp(prefix="jsonl-sessions-bench-", dir=args.dir))
    started = time.perf_counter()
    try:
        if "startup" in only:
            bench_startup(sizes, base, results, issue9)
        if "persist" in only:
            bench_persist(peers, sizes, base, results)
        if "floor" in only:
            bench_floor(peers, sizes, base, results, issue9)
        if "resume" in only:
            bench_resume(peers, sizes, base, results)
        if "store" in only:
            bench_store(peers, sizes, base, results)
        if "scale" in only:
            info["scale"] = bench_scale(sizes, base, args.cache, results, issue9)
        if "biglog" in only:
            info["biglog"] = bench_biglog(sizes, base, args.cache, results, issue9)
        if "windows" in only:
            info["windows"] = bench_windows(sizes, base, args.cache, results, issue10)
        if "frameworks" in only:
            info["frameworks"] = bench_frameworks(args.quick, base, results, issue12)
        if "imports" in only:
            info["imports"] = bench_imports(args.quick, base, results, issue11)
        if "search" in only:
            info["search"] = bench_search(args.quick, base, results, issue13)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    machine["elapsed_s"] = round(time.perf_counter() - started, 1)
    issue5 = targets(results, sizes) if only & {"persist", "resume", "store"} else []
    if not only >= {"persist", "resume", "store"}:
        issue5 = [t for t in issue5 if t.value is not None]  # those of the sections not run
    report = Report(
        machine=machine,
        quick=args.quick,
        sizes=dataclasses.asdict(sizes),
        peers={p.name: p.description for p in peers},
        results=results,
        targets=issue9 + issue5 + issue10 + issue11 + issue12 + issue13,
        info=info,
    )
    print_report(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(msgspec.json.format(msgspec.json.encode(report)) + b"\n")
        console.print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
