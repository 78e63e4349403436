"""Render a results file of ``run.py --json`` as Markdown tables (for docs/BENCHMARKS.md).

Usage: ``python benchmarks/report.py RESULTS.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import msgspec

OURS = "jsonl-sessions"


def _time(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def render(report: dict[str, Any]) -> str:
    """The machine, one table per workload, and the targets."""
    lines = ["| machine | |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in report["machine"].items()]
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in report["results"]:
        if r["workload"] != "resume-decoded-size":
            groups.setdefault(f"{r['workload']} {msgspec.json.encode(r['params']).decode()}", []).append(r)
    for title, rows in groups.items():
        ours = next((r["median_s"] for r in rows if r["peer"] == OURS), None)
        lines += ["", f"**{title}**", "", "| peer | median | p95 | ours / peer | peak MiB |", "| --- " * 5 + "|"]
        for r in rows:
            ratio = f"{ours / r['median_s']:.2f}" if ours and r["median_s"] else ""
            peak = f"{r['peak_bytes'] / 2**20:.0f}" if r["peak_bytes"] else ""
            median = _time(r["median_s"]) if r["note"] is None else f"n/a ({r['note']})"
            lines.append(f"| {r['peer']} | {median} | {_time(r['p95_s'])} | {ratio} | {peak} |")
    lines += ["", "| target | value | limit | met |", "| --- | --- | --- | --- |"]
    for t in report["targets"]:
        value = "n/a" if t["value"] is None else f"{t['value']:.3f}"
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['name']} | {value} | {'≤' if t['kind'] == 'max' else '≥'} {t['limit']} | {met} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    report = msgspec.json.decode(Path(argv[0]).read_bytes())
    sys.stdout.write(render(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
