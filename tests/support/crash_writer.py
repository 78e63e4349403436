"""A writer that persists turns forever, acknowledging each one; run by test_crash.py and killed.

Usage: ``crash_writer.py ROOT SESSION_ID DURABILITY SEED``

It resumes the session (which the test created), then loops: add one to three
events whose content is their position (``e0``, ``e1``, ...), persist them, and
print ``ack N`` (N = events persisted so far) once ``persist_events`` returned.
Every fourth turn it also writes metadata and prints ``meta N``.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from sessions import LocalSessionService, SessionManager, Text, UserMessage
from sessions.events import EventBase


def main() -> None:
    root, session_id, durability, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    rng = random.Random(seed)
    service = LocalSessionService.open(Path(root), durability=durability)
    stored = service.get_session(session_id)
    if stored is None:
        raise SystemExit(f"no session {session_id}")
    resumed = SessionManager.resume(service, stored)
    manager = resumed.manager
    events: list[EventBase] = list(resumed.events)
    turn = 0
    while True:
        for _ in range(rng.randint(1, 3)):
            n = len(events)
            events.append(UserMessage(f"e{n}") if n % 2 == 0 else Text(f"e{n}"))
        manager.persist_events(events)
        print(f"ack {len(events)}", flush=True)
        turn += 1
        if turn % 4 == 0:
            manager.set_metadata("last", str(len(events)))
            print(f"meta {len(events)}", flush=True)


if __name__ == "__main__":
    main()
