"""The benchmark harness runs end to end and writes well-formed results (timings are not judged here)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

# The whole harness runs once for the module (about 20 s): `make test-slow` and CI run it, `make test` does not.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent.parent
PEERS = {"jsonl-sessions", "sqlite-ref", "sqlite-batched", "eventsourcing", "naive-jsonl", "floor"}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    scratch = tmp_path_factory.mktemp("scratch")
    subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--json", str(out), "--dir", str(scratch)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    data = msgspec.json.decode(out.read_bytes())
    assert isinstance(data, dict)
    data["_path"] = str(out)
    assert list(scratch.iterdir()) == [], "the harness left scratch files behind"
    return data


def _results(report: dict[str, object]) -> list[dict[str, object]]:
    results = report["results"]
    assert isinstance(results, list)
    return results


def test_machine_is_described(report: dict[str, object]) -> None:
    machine = report["machine"]
    assert isinstance(machine, dict)
    assert {"cpu", "cpus", "filesystem", "python", "sqlite"} <= machine.keys()
    assert report["quick"] is True


def test_every_peer_is_measured_on_persist_and_resume(report: dict[str, object]) -> None:
    for durability in ("fsync", "flush"):
        for events in (1, 10):
            measured = [
                r
                for r in _results(report)
                if r["workload"] == "persist" and r["params"] == {"events": events, "durability": durability}
            ]
            assert sorted(str(r["peer"]) for r in measured) == sorted(PEERS), (events, durability)
            _only_optional_missing(measured)
    resumed = [r for r in _results(report) if r["workload"] == "resume"]
    # sqlite-batched stores the same rows as sqlite-ref, so it is not resumed twice.
    assert {r["peer"] for r in resumed} == PEERS - {"sqlite-batched"}
    _only_optional_missing(resumed)


def _only_optional_missing(results: list[dict[str, object]]) -> None:
    """Every peer is timed, except eventsourcing when the optional `bench` extra is missing."""
    for r in results:
        if r["note"] is not None:
            assert r["peer"] == "eventsourcing" and importlib.util.find_spec("eventsourcing") is None, r


def test_every_result_has_timings_or_a_reason(report: dict[str, object]) -> None:
    for r in _results(report):
        if r["workload"] == "resume-decoded-size":
            assert isinstance(r["peak_bytes"], int) and r["peak_bytes"] > 0
            continue
        if r["note"] is None:
            median, p95 = r["median_s"], r["p95_s"]
            assert isinstance(median, float) and isinstance(p95, float), r
            assert 0 < median <= p95, r
            assert isinstance(r["samples"], int) and r["samples"] >= 2, r
        else:
            assert r["median_s"] is None and isinstance(r["note"], str) and r["note"], r


def test_store_workloads_cover_every_store_peer(report: dict[str, object]) -> None:
    for workload in ("find_resumable", "list_sessions"):
        for mode in ("warm", "cold"):
            timed = {
                r["peer"]
                for r in _results(report)
                if r["workload"] == workload and isinstance(r["params"], dict) and r["params"].get("mode") == mode
            }
            assert timed == {"jsonl-sessions", "sqlite-ref", "naive-jsonl"}, (workload, mode)
    for workload in ("verify", "reindex"):
        assert {r["peer"] for r in _results(report) if r["workload"] == workload} >= {"jsonl-sessions", "sqlite-ref"}


def test_targets_are_judged(report: dict[str, object]) -> None:
    targets = report["targets"]
    assert isinstance(targets, list) and len(targets) >= 10
    for t in targets:
        assert t["kind"] in ("max", "min")
        if t["value"] is not None:
            assert t["met"] == (t["value"] <= t["limit"] if t["kind"] == "max" else t["value"] >= t["limit"])


def test_report_renders_every_peer_and_target(report: dict[str, object]) -> None:
    markdown = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "report.py"), str(report["_path"])],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    for peer in PEERS:
        assert f"| {peer} |" in markdown
    targets = report["targets"]
    assert isinstance(targets, list)
    for t in targets:
        assert f"| {t['name']} |" in markdown
