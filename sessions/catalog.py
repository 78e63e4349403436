"""Which sessions a store holds and where: ``find_resumable`` and ``list_sessions``.

Both answer from the index (:mod:`sessions.index`), checking each row against
its log with one ``stat``, and read a log only where its row is missing or
behind it. Which logs exist comes from one scan of ``sessions/``
(:mod:`sessions._layout`), or, while the folder is unchanged, from the listing
the index saved the last time a scan found a row for every log.
"""

from __future__ import annotations

import datetime as dt
import operator
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Final

from eventlog import utcnow
from sessions._layout import LOG_SUFFIX, Layout, Scan
from sessions._mapping import path_text, placed
from sessions.errors import DamagedLogWarning, SessionNotFound, SessionReadError, UnsafeStorePath
from sessions.hold import held_elsewhere
from sessions.index import Listing, Row, SessionIndex
from sessions.models import StoredSession

__all__ = ["Catalog"]

_recency: Final = operator.attrgetter("updated_at", "id")
"""Most recent first, ties to the larger (later created) id."""

Summarize = Callable[[str, Row | None], StoredSession]
"""Reads a session from its log, extending ``row`` if given; raises SessionNotFound if it is gone."""


class Catalog:
    """The sessions of one store, found through its index and its folder listing."""

    def __init__(self, layout: Layout, index: SessionIndex, summarize: Summarize) -> None:
        self._layout = layout
        self._index = index
        self._summarize = summarize

    def find_resumable(self, directory: str | None, git_root: str | None, max_age_secs: float) -> StoredSession | None:
        """See :meth:`sessions.LocalSessionService.find_resumable`."""
        if directory is None and git_root is None:
            return None
        directory, git_root = path_text(directory), path_text(git_root)
        try:
            cutoff = utcnow() - dt.timedelta(seconds=max_age_secs)
        except OverflowError:  # math.inf, or more seconds than there have been: any age will do
            cutoff = dt.datetime.min.replace(tzinfo=dt.UTC)
        scan = self.scan()
        rows = self._index.rows_near(directory, git_root)
        candidates = set(rows)
        unindexed: set[str] = set()
        if scan.logs is not None:  # listed: logs without a row are candidates too, wherever they are
            unindexed = set(scan.logs) - self._index.ids()
            candidates = candidates.intersection(scan.logs) | unindexed
        eligible: list[StoredSession] = []
        all_read = True
        for session_id in sorted(candidates):
            session = self._current(session_id, rows.get(session_id), scan.copies)
            if session is None:
                all_read = all_read and session_id not in unindexed
                continue
            if not placed(session, directory, git_root):
                continue
            if session.archived_at is not None or session.updated_at <= cutoff:
                continue
            eligible.append(session)
        self._index.flush()
        if all_read:
            self._note_listing(scan)
        eligible.sort(key=_recency, reverse=True)
        # A session another process is talking in (sessions.hold) is not this one's to continue.
        return next((s for s in eligible if held_elsewhere(self._layout.locks_dir, s.id) is None), None)

    def list_sessions(self, *, include_archived: bool = False) -> list[StoredSession]:
        """See :meth:`sessions.LocalSessionService.list_sessions`."""
        scan = self.scan()
        for path in scan.unsafe:
            warnings.warn(
                f"{path} is not a regular file; skipped (move it out of the store)", DamagedLogWarning, stacklevel=3
            )
        briefs = self._index.briefs()
        sessions: list[StoredSession] = []
        stale: list[str] = []
        # One stat per log, relative to the folder: a row answers only for exactly the bytes it covers.
        folder = os.open(self._layout.sessions_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for session_id in briefs if scan.logs is None else scan.logs:
                brief = briefs.get(session_id)
                if brief is None or brief.session is None or session_id in scan.copies:
                    stale.append(session_id)
                    continue
                try:
                    st = os.stat(session_id + LOG_SUFFIX, dir_fd=folder, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not brief.covers(st):
                    stale.append(session_id)
                elif include_archived or brief.session.archived_at is None:
                    sessions.append(brief.session)
        finally:
            os.close(folder)
        all_read = True
        for session_id in stale:
            session = self._current(session_id, None, scan.copies)
            if session is None:
                all_read = False
            elif include_archived or session.archived_at is None:
                sessions.append(session)
        sessions.sort(key=_recency, reverse=True)
        self._index.flush()
        if all_read:
            self._note_listing(scan)
        return sessions

    def scan(self) -> Scan:
        """What ``sessions/`` holds: the cached scan, else the index's saved listing, else a new scan."""
        stamp = self._layout.stamp()
        cached = self._layout.cached(stamp)
        if cached is not None:
            return cached
        listing = self._index.listing()
        if listing is not None and (listing.ino, listing.ctime_ns) == stamp:
            folder = self._layout.sessions_dir
            copies = {sid: [folder / name for name in names] for sid, names in listing.copies.items()}
            scan = Scan(stamp, True, None, copies, [], time.time_ns())
            self._layout.adopt(scan)
            return scan
        return self._layout.scan()

    def copies_of(self, session_id: str) -> list[Path]:
        """The sync conflict copies beside one session's log (see :mod:`sessions.conflicts`)."""
        return list(self.scan().copies.get(session_id, ()))

    def note_created(self, before: tuple[int, int]) -> None:
        """After this process created a log (its row already put): if the saved listing was of the folder
        just before, save one of the folder now, so a new process still need not list it."""
        saved = self._index.listing()
        if saved is None or (saved.ino, saved.ctime_ns) != before:
            return
        self._index.flush()  # the new log's row goes first
        ino, ctime_ns = self._layout.stamp()
        self._index.note_listing(Listing(ino=ino, ctime_ns=ctime_ns, copies=saved.copies))

    def _note_listing(self, scan: Scan) -> None:
        """Save a scan in which every log has a row, so a new process need not list the folder."""
        if not scan.trusted or scan.logs is None:
            return
        saved = self._index.listing()
        if saved is not None and (saved.ino, saved.ctime_ns) == scan.stamp:
            return
        copies = {sid: [path.name for path in paths] for sid, paths in scan.copies.items()}
        self._index.note_listing(Listing(ino=scan.stamp[0], ctime_ns=scan.stamp[1], copies=copies))

    def _current(self, session_id: str, row: Row | None, copies: dict[str, list[Path]]) -> StoredSession | None:
        """The session from its row when the row covers its log as it is (one ``stat``), else from the log."""
        try:
            if row is not None and session_id not in copies:
                st = os.stat(self._layout.log_name(session_id), follow_symlinks=False)
                if row.log.trusted(st):
                    return row.session
            return self._summarize(session_id, row)
        except (FileNotFoundError, SessionNotFound):
            return None
        except (UnsafeStorePath, SessionReadError) as exc:
            warnings.warn(f"{exc}; skipped", DamagedLogWarning, stacklevel=4)
            return None
