"""What every section of ``run.py`` shares: the result records, the statistics, interleaving and fresh processes.

The machine is shared and noisy, so every figure is a median over repetitions
whose order rotates each round (the load falls on all contenders alike), with
its spread: the interquartile range (q1-q3) and the extremes. A ratio between
two contenders of one round is taken per round, then summarised the same way.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from rich.console import Console

__all__ = [
    "FLOOR",
    "OURS",
    "ROOT",
    "SQLITE",
    "Report",
    "Result",
    "Target",
    "console",
    "fresh",
    "judge",
    "paired",
    "quartiles",
    "result_of",
    "rounds",
    "scratch",
    "timed",
]

OURS = "jsonl-sessions"
SQLITE = "sqlite-ref"
FLOOR = "floor"
ROOT = Path(__file__).resolve().parent.parent
"""The checkout: fresh processes run from here, so ``benchmarks`` and the library under test are importable."""

console = Console(highlight=False)
_T = TypeVar("_T")


class Result(msgspec.Struct, kw_only=True):
    """The timings of one peer on one workload."""

    workload: str
    params: dict[str, Any]
    peer: str
    samples: int = 0
    median_s: float | None = None
    p95_s: float | None = None
    peak_bytes: int | None = None
    note: str | None = None
    """Why there is no timing (the peer does not offer this)."""
    q1_s: float | None = None
    q3_s: float | None = None
    min_s: float | None = None
    max_s: float | None = None
    peak_max_bytes: int | None = None
    """With ``peak_bytes`` the median of several processes' peaks: the largest of them."""


class Target(msgspec.Struct, kw_only=True):
    name: str
    value: float | None
    limit: float
    kind: str
    """``max``: value must be at most ``limit``; ``min``: at least."""
    met: bool | None
    q1: float | None = None
    q3: float | None = None
    """The interquartile range of ``value`` over the rounds (per-round ratios for a ratio), when known."""
    low: float | None = None
    high: float | None = None
    """The extremes over the rounds, when known."""


class Report(msgspec.Struct, kw_only=True):
    machine: dict[str, Any]
    quick: bool
    sizes: dict[str, Any]
    peers: dict[str, str]
    results: list[Result]
    targets: list[Target]
    info: dict[str, Any] = msgspec.field(default_factory=dict)
    """One-off figures that are not repeated measurements (building a store's index, fixture sizes)."""


def quartiles(samples: list[float]) -> tuple[float, float, float]:
    """``(q1, median, q3)`` of ``samples`` (inclusive method; one sample is its own spread)."""
    if len(samples) == 1:
        return samples[0], samples[0], samples[0]
    q1, median, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return q1, median, q3


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def result_of(
    workload: str, params: dict[str, Any], peer: str, samples: list[float], peaks: list[int] | None = None
) -> Result:
    """A result with the median, p95, quartiles and extremes of ``samples`` (seconds)."""
    q1, median, q3 = quartiles(samples)
    peak = peak_max = None
    if peaks:
        peak, peak_max = round(statistics.median(peaks)), max(peaks)
    return Result(
        workload=workload,
        params=params,
        peer=peer,
        samples=len(samples),
        median_s=median,
        p95_s=_p95(samples),
        q1_s=q1,
        q3_s=q3,
        min_s=min(samples),
        max_s=max(samples),
        peak_bytes=peak,
        peak_max_bytes=peak_max,
    )


def paired(numerators: list[float], denominators: list[float]) -> list[float]:
    """Per-round ratios of two contenders measured in the same rounds."""
    if len(numerators) != len(denominators):
        raise ValueError(f"{len(numerators)} rounds against {len(denominators)}: not paired")
    return [a / b for a, b in zip(numerators, denominators, strict=True) if b > 0]


def judge(name: str, values: list[float], limit: float, kind: str = "max") -> Target:
    """A target judged on the median of ``values`` (per-round ratios, or one figure per round)."""
    if not values:
        return Target(name=name, value=None, limit=limit, kind=kind, met=None)
    q1, median, q3 = quartiles(values)
    met = median <= limit if kind == "max" else median >= limit
    return Target(
        name=name, value=median, limit=limit, kind=kind, met=met, q1=q1, q3=q3, low=min(values), high=max(values)
    )


def rounds(tasks: Mapping[str, Callable[[], _T]], reps: int, warmup: int = 1) -> dict[str, list[_T]]:
    """Run every task once a round, ``warmup + reps`` rounds, the order rotating each round.

    :returns: each task's outcomes of the ``reps`` rounds after the warm-up, in round order.
    """
    names = list(tasks)
    out: dict[str, list[_T]] = {name: [] for name in names}
    for rep in range(warmup + reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            value = tasks[name]()
            if rep >= warmup:
                out[name].append(value)
    return out


def timed(call: Callable[[], object]) -> float:
    """Seconds ``call`` took."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def fresh(module: str, *args: str) -> dict[str, Any]:
    """Run ``python -m MODULE ARGS`` from the checkout in a new interpreter; its last stdout line, as JSON."""
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{module} {' '.join(args)[:200]} failed ({proc.returncode}):\n{proc.stderr.decode(errors='replace')}"
        )
    out = json.loads(proc.stdout.decode().splitlines()[-1])
    assert isinstance(out, dict)
    return out


@contextmanager
def scratch(base: Path, name: str) -> Iterator[Path]:
    """A new folder under ``base``, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
