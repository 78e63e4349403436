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


def _span(low: float | None, high: float | None) -> str:
    """``low-high`` seconds, in one unit where both ends have the same."""
    if low is None or high is None:
        return ""
    units = [(1e6, "µs", 0) if x < 1e-3 else (1e3, "ms", 1) if x < 1 else (1.0, "s", 2) for x in (low, high)]
    (scale, unit, digits), (high_scale, high_unit, high_digits) = units
    if unit == high_unit:
        return f"{low * scale:.{digits}f}-{high * scale:.{digits}f} {unit}"
    return f"{low * scale:.{digits}f} {unit}-{high * high_scale:.{high_digits}f} {high_unit}"


def _values(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f"{low:.3f}-{high:.3f}"


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
        header = "| peer | median | q1-q3 | min-max | p95 | ours / peer | peak MiB |"
        lines += ["", f"**{title}**", "", header, "| --- " * 7 + "|"]
        for r in rows:
            ratio = f"{ours / r['median_s']:.2f}" if ours and r["median_s"] else ""
            peak = f"{r['peak_bytes'] / 2**20:.0f}" if r["peak_bytes"] else ""
            if r.get("peak_max_bytes"):
                peak += f" (max {r['peak_max_bytes'] / 2**20:.0f})"
            median = _time(r["median_s"]) if r["note"] is None else f"n/a ({r['note']})"
            quartiles = _span(r.get("q1_s"), r.get("q3_s"))
            extremes = _span(r.get("min_s"), r.get("max_s"))
            lines.append(
                f"| {r['peer']} | {median} | {quartiles} | {extremes} | {_time(r['p95_s'])} | {ratio} | {peak} |"
            )
    lines += ["", "| target | value | q1-q3 | min-max | limit | met |", "| --- " * 6 + "|"]
    for t in report["targets"]:
        value = "n/a" if t["value"] is None else f"{t['value']:.3f}"
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        spread = f"{_values(t.get('q1'), t.get('q3'))} | {_values(t.get('low'), t.get('high'))}"
        limit = f"{'≤' if t['kind'] == 'max' else '≥'} {t['limit']}"
        lines.append(f"| {t['name']} | {value} | {spread} | {limit} | {met} |")
    if report.get("info"):
        lines += ["", "| one-off figures | |", "| --- | --- |"]
        lines += [f"| {key} | {msgspec.json.encode(value).decode()} |" for key, value in report["info"].items()]
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
