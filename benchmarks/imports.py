"""Issue #11, imported sessions: resuming one costs less than parsing its source, and importing is quick.

*resume*: ``SessionManager.resume`` (with ``get_session``) of the largest Claude
Code transcript in ``../shared/fixtures/transcripts/``, imported into a store
opened with ``sessions.importers.EVENT_TYPES`` (warm: one service, asked once
before the rounds), against reading the same source file and parsing each line
with ``json.loads`` and with ``msgspec.json.decode``. Interleaved rounds.
Targets: at most 1.0 times each, per-round ratios.

*import*: the real ``sessions`` console script in a subprocess, ``sessions import
--from auto`` of the whole fixture folder (three tools, eight sessions) into a new
store, process start-up included. Target: at most 2 s.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec

from benchmarks.harness import OURS, ROOT, Result, Target, console, judge, paired, result_of, rounds, scratch, timed
from sessions import EventBase, LocalSessionService, SessionManager, importers

__all__ = ["TRANSCRIPTS", "bench_imports"]

TRANSCRIPTS = ROOT.parent / "shared" / "fixtures" / "transcripts"
"""The real transcripts, read in place beside the checkout."""


def _largest_claude_file() -> Path:
    files = [p for p in (TRANSCRIPTS / "claude-code").glob("*.jsonl") if p.is_file()]
    if not files:
        raise SystemExit(f"imports: no Claude Code transcripts in {TRANSCRIPTS / 'claude-code'}; see SOURCES.md there")
    return max(files, key=lambda p: p.stat().st_size)


def _json_loads(path: Path) -> object:
    return [json.loads(line) for line in path.read_bytes().splitlines() if line]


def _msgspec_decode(path: Path) -> object:
    decode = msgspec.json.decode
    return [decode(line) for line in path.read_bytes().splitlines() if line]


def bench_imports(quick: bool, base: Path, results: list[Result], targets: list[Target]) -> dict[str, object]:
    """Run both workloads; append their results and targets. ``--quick`` runs fewer rounds."""
    reps = 5 if quick else 30
    source = _largest_claude_file()
    info: dict[str, object] = {"source": source.name, "source_bytes": source.stat().st_size}
    with scratch(base, "imports") as root:
        store = LocalSessionService.open(root / "store", event_types=importers.EVENT_TYPES)
        (imported, *_) = importers.import_claude_code(store, source)
        info["log_bytes"] = store.log_path(imported.session_id).stat().st_size

        def resume() -> list[EventBase]:
            stored = store.get_session(imported.session_id)
            assert stored is not None
            return SessionManager.resume(store, stored).events

        info["resumed_events"] = len(resume())  # warm: the service has read the log once
        calls: dict[str, Callable[[], object]] = {
            OURS: resume,
            "json.loads": functools.partial(_json_loads, source),
            "msgspec": functools.partial(_msgspec_decode, source),
        }
        samples = rounds({name: functools.partial(timed, call) for name, call in calls.items()}, reps, warmup=2)
        params = {"file": source.name, "lines": sum(1 for _ in source.open("rb"))}
        for name, times in samples.items():
            results.append(result_of("import-resume", params, name, times))
        for peer in ("json.loads", "msgspec"):
            ratios = paired(samples[OURS], samples[peer])
            targets.append(judge(f"resume of an imported Claude Code session / {peer} per line", ratios, 1.0))

    cli = Path(sys.executable).parent / "sessions"

    def import_all() -> float:
        with scratch(base, "import-cli") as work:
            command = [str(cli), "--store", str(work / "store"), "import", "--from", "auto", str(TRANSCRIPTS)]
            return timed(functools.partial(subprocess.run, command, capture_output=True, check=True))

    times = rounds({OURS: import_all}, 3 if quick else 7, warmup=1)[OURS]
    results.append(result_of("import-cli", {"folder": str(TRANSCRIPTS)}, OURS, times))
    targets.append(judge("sessions import --from auto of the fixture folder (s)", times, 2.0))
    console.print(f"imports: {info}")
    return info
