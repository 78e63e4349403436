"""Run ``merge_conflict_copies`` on a store and SIGKILL this process at its Nth file-system call.

Usage: ``python -m tests.support.sync_crash_worker ROOT N``. Prints ``done`` if it finished first.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from eventlog import _fs
from sessions import LocalSessionService
from sessions.conflicts import merge_conflict_copies


def _kill_at(n: int) -> None:
    calls = 0

    def wrap(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == n:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args)

        return call

    for name in ("open", "write", "fsync", "replace", "ftruncate"):
        setattr(_fs, name, wrap(name, getattr(_fs, name)))


def main() -> None:
    root, n = sys.argv[1], int(sys.argv[2])
    service = LocalSessionService.open(root, durability="fsync")
    _kill_at(n)
    merge_conflict_copies(service, dry_run=False)
    print("done", flush=True)


if __name__ == "__main__":
    main()
