"""Sync costs: merging diverged copies, reading a session with a conflict copy beside it, doctor's merge.

Run: ``.venv/bin/python benchmarks/bench_sync.py [--events N] [--repeat R] [--json FILE]``.
Prints medians after a warm-up; not a test, and nothing here gates CI.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgspec
from rich.console import Console
from rich.table import Table

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.workloads import events_for
from eventlog.merge import merge_logs
from sessions import LocalSessionService, SessionManager
from sessions.conflicts import merge_conflict_copies


def _median_ms(run: Callable[[], object], repeat: int, setup: Callable[[], object] | None = None) -> float:
    times = []
    for i in range(repeat + 1):
        if setup is not None:
            setup()
        start = time.perf_counter()
        run()
        if i:  # the first run warms caches and is dropped
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=2000, help="events in the shared part of the session")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", type=Path, help="write the results as JSON to this file")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    try:
        a = LocalSessionService.open(scratch / "a", durability="flush")
        manager = SessionManager.create_new(a, directory="/proj")
        shared = events_for(args.events)
        manager.persist_events(shared)
        sid = manager.session_id
        shutil.copytree(scratch / "a" / "sessions", scratch / "b" / "sessions")
        b = LocalSessionService.open(scratch / "b", durability="flush")
        for store, seed in ((a, 1), (b, 2)):
            stored = store.get_session(sid)
            assert stored is not None
            resumed = SessionManager.resume(store, stored)
            resumed.manager.persist_events([*resumed.events, *events_for(args.events // 10, seed=seed)])
        log_a, log_b = a.log_path(sid).read_bytes(), b.log_path(sid).read_bytes()
        copy = a.sessions_dir / f"{sid}.sync-conflict-20261125-010203-ABCDEF7.jsonl"
        clean = LocalSessionService.open(scratch / "clean", durability="flush")
        clean.log_path(sid).write_bytes(log_a)

        def lay_copy() -> None:
            a.log_path(sid).write_bytes(log_a)
            copy.write_bytes(log_b)

        copy.write_bytes(log_b)
        rows = [
            ("merge_logs, two diverged copies", _median_ms(lambda: merge_logs([log_a, log_b]), args.repeat)),
            ("merge_logs, one log (already merged)", _median_ms(lambda: merge_logs([log_a]), args.repeat)),
            ("load_events, no copy", _median_ms(lambda: clean.load_events(sid), args.repeat)),
            ("load_events, with a conflict copy (union)", _median_ms(lambda: a.load_events(sid), args.repeat)),
            ("get_session, no copy", _median_ms(lambda: clean.get_session(sid), args.repeat)),
            ("get_session, with a conflict copy (union)", _median_ms(lambda: a.get_session(sid), args.repeat)),
            (
                "merge_conflict_copies (flush), one session",
                _median_ms(lambda: merge_conflict_copies(a, dry_run=False), args.repeat, setup=lay_copy),
            ),
        ]
        sizes = {"events": args.events, "log_bytes": len(log_a), "copy_bytes": len(log_b)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    table = Table(title=f"sync costs: {sizes['events']} shared events, log {sizes['log_bytes'] // 1024} KiB")
    table.add_column("operation")
    table.add_column("median ms", justify="right")
    for name, ms in rows:
        table.add_row(name, f"{ms:.2f}")
    Console().print(table)
    if args.json is not None:
        args.json.write_bytes(msgspec.json.encode({"sizes": sizes, "median_ms": dict(rows)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
