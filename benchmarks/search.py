"""Issue #13, search: ``sessions search PATTERN`` over 1 GiB of logs against ``grep -c PATTERN`` over the same files.

A store of sessions whose logs add up to 1 GiB (``--quick``: 8 MiB) of agent turns, written as the library
writes them; one user message in 10,000 holds the word searched for. Both commands run in a new process each
round, on a warm page cache (the first round is a warm-up), in rotating order: ``sessions search needle``
(the whole command: interpreter start, store scan, the byte scan, decoding the matching lines, printing) and
``grep -c needle`` over the same log files. Target: at most 2 times grep's time, per round.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import msgspec

from benchmarks.harness import Result, Target, judge, paired, result_of, rounds, timed
from eventlog import KIND_EVENT, KIND_HEADER, Record, encode_records, new_id, utcnow

__all__ = ["bench_search"]

NEEDLE: Final = "xylophonist"
WORDS: Final = tuple(
    [
        "the",
        "build",
        "failed",
        "because",
        "a",
        "header",
        "is",
        "missing",
        "so",
        "we",
        "add",
        "it",
        "and",
        "run",
        "the",
        "tests",
        "again",
    ]
)


def _build_store(root: Path, total_bytes: int, session_bytes: int) -> int:
    """Logs of agent turns adding up to ``total_bytes``; returns how many events hold the needle."""
    sessions = root / "sessions"
    sessions.mkdir(parents=True)
    rng = random.Random(13)
    written = needles = turns = 0
    while written < total_bytes:
        session_id = new_id()
        now = utcnow()
        records = [Record(k=KIND_HEADER, id=session_id, ts=now, v=1, data=_raw({"directory": "/bench"}))]
        parent = None
        size = 0
        while size < session_bytes:
            text = " ".join(rng.choices(WORDS, k=rng.randint(5, 60)))
            turns += 1
            if turns % 10_000 == 1:
                text += f" {NEEDLE}"
                needles += 1
            for kind, payload in (
                ("user_message", {"content": text}),
                ("tool_result", {"tool_use_id": "t1", "content": text * 3, "is_error": False}),
                ("text", {"content": text}),
            ):
                event_id = new_id()
                record = Record(
                    k=KIND_EVENT, id=event_id, ts=now, parent=parent, inv="b", type=kind, data=_raw(payload)
                )
                records.append(record)
                parent = event_id
                size += 3 * len(text) + 150
        log = encode_records(records)
        (sessions / f"{session_id}.jsonl").write_bytes(log)
        written += len(log)
    return needles


def _raw(value: object) -> msgspec.Raw:
    return msgspec.Raw(msgspec.json.encode(value))


def bench_search(quick: bool, base: Path, results: list[Result], targets: list[Target]) -> dict[str, Any]:
    """Search against grep; appends the results and the issue #13 target, returns the fixture's figures."""
    total = (8 << 20) if quick else (1 << 30)
    store = base / "search-store"
    needles = _build_store(store, total, (1 << 20) if quick else (4 << 20))
    logs = sorted(str(p) for p in (store / "sessions").iterdir())
    sessions = str(Path(sys.executable).parent / "sessions")
    grep = shutil.which("grep")
    env = {**os.environ, "SESSIONS_STORE": str(store), "NO_COLOR": "1"}

    def ours() -> float:
        return timed(
            lambda: subprocess.run([sessions, "search", NEEDLE], env=env, stdout=subprocess.DEVNULL, check=True)
        )

    def theirs() -> float:
        assert grep is not None
        return timed(lambda: subprocess.run([grep, "-c", NEEDLE, *logs], stdout=subprocess.DEVNULL, check=False))

    # Index the store once (the first list of a new store reads every header), as a user's store already is.
    subprocess.run([sessions, "list", "--json"], env=env, stdout=subprocess.DEVNULL, check=True)
    found = subprocess.run([sessions, "search", NEEDLE, "--json"], env=env, capture_output=True, check=False)
    hits = found.stdout.count(b'"event_id"')
    params = {"bytes": total, "logs": len(logs), "matching_events": hits}
    if grep is None:
        results.append(Result(workload="search", params=params, peer="grep -c", note="grep not installed"))
        return {"search": params}
    times = rounds({"ours": ours, "grep": theirs}, reps=3 if quick else 5)
    results.append(result_of("search", params, "sessions search", times["ours"]))
    results.append(result_of("search", params, "grep -c", times["grep"]))
    targets.append(judge("#13 search 1 GiB: sessions search / grep -c", paired(times["ours"], times["grep"]), 2.0))
    shutil.rmtree(store, ignore_errors=True)
    return {"search": {**params, "needles_written": needles}}
