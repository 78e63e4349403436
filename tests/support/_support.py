"""Helpers shared by the reliability suites: checking a session log against what was acknowledged."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Final

import msgspec

from eventlog import KIND_EVENT, read_log, verify_log
from sessions import LocalSessionService
from sessions.errors import DamagedLogWarning

HERE: Final = Path(__file__).parent
CHAIN_FINDINGS: Final = frozenset({"duplicate", "gap"})


def run_script(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start one of the scripts beside this file as a real subprocess with line-buffered stdout."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONWARNINGS="ignore", **(env or {}))
    return subprocess.Popen(
        [sys.executable, str(HERE / name), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def event_contents(root: Path, session_id: str) -> list[str]:
    """The ``content`` of each event of the session, as a fresh service loads them (damage warnings allowed)."""
    service = LocalSessionService.open(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedLogWarning)
        events = service.load_events(session_id)
    return [msgspec.json.decode(e.event_data)["content"] for e in events]


def raw_event_ids(path: Path) -> list[str]:
    """Every event id in the log file, in file order, duplicates included."""
    return [r.id for r in read_log(path).records if r.k == KIND_EVENT]


def assert_chain_valid(path: Path, *, torn_allowed: bool = False) -> None:
    """The log is one straight chain: no damaged line, no duplicate, gap or fork."""
    report = verify_log(path)
    bad = [f for f in report.findings if f.kind != "torn_tail" or not torn_allowed]
    assert not bad, f"{path}: {bad}"
    assert len(report.heads) <= 1, f"{path} forked: {report.heads}"
    ids = raw_event_ids(path)
    assert len(ids) == len(set(ids)), f"{path}: duplicate event ids"
