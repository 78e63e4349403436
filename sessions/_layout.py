"""Where things are in a store, and the one scan of its ``sessions/`` folder.

A store is a folder::

    ROOT/sessions/<session id>.jsonl   one log per session: the only source of truth
    ROOT/index.jsonl                   disposable cache: one summary line per session (sessions/index.py)
    ROOT/locks/                        disposable lock files
    ROOT/trash/                        torn tails, merged conflict copies and deleted sessions

The scan of ``sessions/`` is cached while the folder is unchanged. The check is
the folder's inode and ``ctime``: a copy tool can put an old ``mtime`` back
(``rsync -a``, ``cp -a``), but nothing can set ``ctime``, which moves whenever an
entry is added, removed or renamed.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from eventlog.summary import RACY_NS
from sessions.conflicts import conflict_copy_session
from sessions.protocol import check_session_id, is_session_id

__all__ = ["LOG_SUFFIX", "Layout", "Scan"]

LOG_SUFFIX: Final = ".jsonl"
# A scan taken within RACY_NS of the folder's ctime may miss an entry added within
# the same clock tick (coarse clocks: 1 s on HFS+, 2 s on FAT), as git's "racily
# clean" entries may; such a scan is taken again next time.


@dataclass(frozen=True)
class Scan:
    """What ``sessions/`` held at one moment."""

    stamp: tuple[int, int]
    """The folder's (inode, ctime) when scanned."""
    trusted: bool
    """False if taken within ``RACY_NS`` of the folder's last change: look again next time."""
    logs: frozenset[str] | None
    """Ids of the sessions whose log is a regular file; None when taken from the index's saved listing,
    which promises only that every log has a row (rows of deleted logs may remain)."""
    copies: dict[str, list[Path]] = field(default_factory=dict)
    """Sync conflict copies by the session id they belong to, each list sorted by name."""
    unsafe: list[Path] = field(default_factory=list)
    """Entries named like a log that are not regular files (a FIFO, a socket, a folder, a symlink)."""
    taken_ns: int = 0
    folded: frozenset[str] = frozenset()
    """The lower-case form of every id in ``logs`` that holds an upper-case letter."""

    def clashes(self, session_id: str) -> str | None:
        """An id in ``logs`` that differs from ``session_id`` only in case (one file on macOS or Windows)."""
        if self.logs is None:
            return None
        lower = session_id.lower()
        if lower != session_id and lower in self.logs:
            return lower
        if lower in self.folded:
            return next((other for other in self.logs if other.lower() == lower and other != session_id), None)
        return None


class Layout:
    """The paths of a store and the cached scan of its logs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sessions_dir = root / "sessions"
        self.locks_dir = root / "locks"
        self.trash_dir = root / "trash"
        self.index_path = root / "index.jsonl"
        self._folder = os.fspath(self.sessions_dir)
        self._scan: Scan | None = None
        self._mutex = threading.Lock()

    def log_path(self, session_id: str) -> Path:
        """The log file of a session (which may not exist yet).

        :raises ValueError: if ``session_id`` is not a valid session id.
        """
        return self.sessions_dir / f"{check_session_id(session_id)}{LOG_SUFFIX}"

    def log_name(self, session_id: str) -> str:
        """The log's path as a str, for the hot paths (no id check: callers checked it)."""
        return os.path.join(self._folder, session_id + LOG_SUFFIX)

    def lock_path(self, session_id: str) -> Path:
        return self.locks_dir / f"{session_id}.lock"

    def scan(self) -> Scan:
        """The logs and conflict copies in ``sessions/``, listed again only when the folder changed."""
        stamp = self.stamp()
        # An untrusted scan is still reused for a moment: at 100,000 sessions a scan costs ~50 ms.
        cached = self.cached(stamp)
        if cached is not None and cached.logs is not None:
            return cached
        scan = self._take(stamp)
        with self._mutex:
            self._scan = scan
        return scan

    def note_created(self, session_id: str, before: tuple[int, int] | None) -> None:
        """Count a log we just created into the cached scan, if nothing else changed the folder meanwhile.

        :param before: the folder's stamp just before the create.
        """
        st = os.stat(self._folder)
        with self._mutex:
            cached = self._scan
            if cached is None or before is None or cached.stamp != before or not cached.trusted:
                return
            logs = None if cached.logs is None else cached.logs | {session_id}
            folded = cached.folded | {session_id.lower()} if session_id.lower() != session_id else cached.folded
            self._scan = Scan(
                (st.st_ino, st.st_ctime_ns), True, logs, cached.copies, cached.unsafe, time.time_ns(), folded
            )

    def stamp(self) -> tuple[int, int]:
        st = os.stat(self._folder)
        return (st.st_ino, st.st_ctime_ns)

    def _take(self, stamp: tuple[int, int]) -> Scan:
        logs: set[str] = set()
        copies: dict[str, list[Path]] = {}
        unsafe: list[Path] = []
        with os.scandir(self._folder) as entries:
            for entry in entries:
                name = entry.name
                if name.endswith(LOG_SUFFIX) and is_session_id(name[: -len(LOG_SUFFIX)]):
                    if entry.is_file(follow_symlinks=False):
                        logs.add(name[: -len(LOG_SUFFIX)])
                    else:
                        unsafe.append(Path(entry.path))
                    continue
                owner = conflict_copy_session(name)
                if owner is not None:
                    copies.setdefault(owner, []).append(Path(entry.path))
        for paths in copies.values():
            paths.sort()
        now = time.time_ns()
        # Generated ids are lower case: this costs one str.lower() per log, no set unless an app used capitals.
        folded = frozenset(lower for lower in (i.lower() for i in logs) if lower not in logs)
        return Scan(stamp, now - stamp[1] > RACY_NS, frozenset(logs), copies, unsafe, now, folded)

    def adopt(self, scan: Scan) -> None:
        """Take a scan known by other means (the index's saved listing) as the cached one."""
        with self._mutex:
            self._scan = scan

    def cached(self, stamp: tuple[int, int]) -> Scan | None:
        """The cached scan if it is of the folder as it is now."""
        with self._mutex:
            scan = self._scan
        if scan is not None and scan.stamp == stamp and (scan.trusted or time.time_ns() - scan.taken_ns < 100_000_000):
            return scan
        return None
