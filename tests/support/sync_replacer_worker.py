"""Replace a log over and over the way sync tools do: write a temporary file, rename it over the log.

Usage: ``python -m tests.support.sync_replacer_worker LOG SECONDS VERSION...``; cycles through the versions.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def main() -> None:
    log, seconds = Path(sys.argv[1]), float(sys.argv[2])
    versions = [Path(p).read_bytes() for p in sys.argv[3:]]
    tmp = log.with_name(f".syncthing.{log.name}.tmp")
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        tmp.write_bytes(versions[n % len(versions)])
        os.replace(tmp, log)
        n += 1
    print(n, flush=True)


if __name__ == "__main__":
    main()
