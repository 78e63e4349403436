"""Profile one workload of this library with pyinstrument (the profiles in docs/BENCHMARKS.md).

Usage::

    python benchmarks/profile.py persist [--durability flush|fsync] [--events 1] [--turns 3000]
    python benchmarks/profile.py resume [--events 10000] [--repeat 5]
    python benchmarks/profile.py find [--sessions 10000] [--cold]

Needs the optional ``bench`` extra (pyinstrument).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.peers.ours import OursPeer
from benchmarks.run import _specs
from benchmarks.workloads import FULL, events_for, turn
from sessions import ConversationEvent, LocalSessionService, SessionManager


def _persist(root: Path, args: argparse.Namespace) -> Callable[[], object]:
    service = LocalSessionService.open(root, durability=args.durability)
    manager = SessionManager.create_new(service, "/work/project", "/work/project")
    rng = random.Random(1)
    turns = [turn(rng, args.events) for _ in range(4)]
    history: list[ConversationEvent] = []
    for i in range(20):  # warm up: the session exists and its log has some length
        history.extend(turns[i % 4])
        manager.persist_events(history)

    def run() -> None:
        for i in range(args.turns):
            history.extend(turns[i % 4])
            manager.persist_events(history)

    return run


def _resume(root: Path, args: argparse.Namespace) -> Callable[[], object]:
    resume = OursPeer().resumer(root, events_for(args.events))
    resume()
    return lambda: [resume() for _ in range(args.repeat)]


def _find(root: Path, args: argparse.Namespace) -> Callable[[], object]:
    specs = _specs(args.sessions, FULL)
    OursPeer().populate(root, specs)
    target = specs[-2].directory
    service = LocalSessionService.open(root)
    if not args.cold:
        service.find_resumable(target, target, 3600.0)
    return lambda: service.find_resumable(target, target, 3600.0)


WORKLOADS = {"persist": _persist, "resume": _resume, "find": _find}


def main(argv: list[str] | None = None) -> int:
    try:
        from pyinstrument import Profiler
    except ImportError:
        print("pyinstrument is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(description="Profile one workload of jsonl-sessions with pyinstrument.")
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("--durability", choices=["fsync", "flush"], default="flush")
    parser.add_argument("--events", type=int, default=None, help="events per turn (persist) or per session (resume)")
    parser.add_argument("--turns", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--cold", action="store_true", help="find: profile the first call of a fresh service")
    parser.add_argument("--dir", type=Path, default=None, help="scratch directory (default: the system temp dir)")
    args = parser.parse_args(argv)
    if args.events is None:
        args.events = 1 if args.workload == "persist" else 10_000
    with tempfile.TemporaryDirectory(prefix="jsonl-sessions-profile-", dir=args.dir) as scratch:
        run = WORKLOADS[args.workload](Path(scratch), args)
        profiler = Profiler(interval=0.0001)
        profiler.start()
        run()
        profiler.stop()
    print(profiler.output_text(unicode=False, color=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
