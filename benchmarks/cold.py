"""One cold query in a fresh process: ``python -m benchmarks.cold PEER ROOT OP DIRECTORY [MAX_AGE_SECS]``.

Prints the seconds from opening the store to the answer, as JSON. Imports are
not counted (they are the same whichever store is asked); the OS page cache is
whatever earlier runs left, so "cold" means a process with no state of its own.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import msgspec

from benchmarks.peers import peer_by_name


def main(argv: list[str]) -> None:
    name, root, op, directory, *rest = argv
    max_age = float(rest[0]) if rest else 3600.0
    peer = peer_by_name(name)
    start = time.perf_counter()
    store = peer.open_store(Path(root))
    answer: object = (
        store.find_resumable(directory, directory, max_age) if op == "find_resumable" else store.list_sessions()
    )
    elapsed = time.perf_counter() - start
    store.close()
    sys.stdout.buffer.write(msgspec.json.encode({"seconds": elapsed, "answer": answer}) + b"\n")


if __name__ == "__main__":
    main(sys.argv[1:])
