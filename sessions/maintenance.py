"""Store maintenance on a :class:`LocalSessionService`: id prefixes, reindex and doctor.

Export and import are in :mod:`sessions.transfer`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final, NamedTuple

import msgspec

from eventlog import move_to_trash
from sessions import shortid
from sessions.conflicts import merge_conflict_copies
from sessions.errors import AmbiguousSessionId, SessionNotFound, SessionsError
from sessions.store import LocalSessionService

__all__ = [
    "DOCTOR_STEPS",
    "AmbiguousSessionId",
    "DoctorStep",
    "Track",
    "doctor",
    "reindex",
    "resolve_session_id",
]

Track = Callable[[Sequence[str], str], Iterable[str]]
"""Wraps the session ids a long operation walks through, to show progress: ``track(ids, description)``."""


def _no_progress(ids: Sequence[str], description: str) -> Iterable[str]:
    return ids


def resolve_session_id(service: LocalSessionService, prefix: str) -> str:
    """The one session ``prefix`` names: a whole id, a unique prefix of one (as git resolves commits), or a
    short id as ``sessions list`` prints it (a unique start of the id's random part, see :mod:`sessions.shortid`).

    :raises SessionNotFound: if no session matches.
    :raises AmbiguousSessionId: if several do.
    """
    try:
        found = shortid.resolve(prefix, service.session_ids())
    except shortid.Ambiguous as exc:
        shown = ", ".join(exc.matches[:5]) + (", ..." if len(exc.matches) > 5 else "")
        raise AmbiguousSessionId(
            f"session id {prefix!r} matches {len(exc.matches)} sessions ({shown}); give more characters"
        ) from None
    if found is None:
        raise SessionNotFound(f"no session {prefix!r} in {service.root}; `sessions list --all` shows the ids")
    return found


# -- reindex and doctor -------------------------------------------------------------------


def reindex(service: LocalSessionService, track: Track = _no_progress) -> tuple[int, list[str]]:
    """Drop the index and rebuild it from every log.

    :returns: how many sessions were indexed, and a line per log that could not be read (left untouched).
    """
    service.drop_index()
    indexed = 0
    problems: list[str] = []
    for session_id in track(service.session_ids(), "Rebuilding index"):
        try:
            if service.get_session(session_id) is not None:
                indexed += 1
        except SessionsError as exc:
            problems.append(f"{session_id}: {exc}")
    service.close()
    return indexed, problems


class DoctorStep(NamedTuple):
    """One step of ``doctor``: ``run(service, dry_run, track)`` returns a line per change (made or due)."""

    name: str
    run: Callable[[LocalSessionService, bool, Track], list[str]]


def _merge_conflict_copies(service: LocalSessionService, dry_run: bool, track: Track) -> list[str]:
    return [merged.describe(dry_run=dry_run) for merged in merge_conflict_copies(service, dry_run=dry_run)]


def _repair_torn_tails(service: LocalSessionService, dry_run: bool, track: Track) -> list[str]:
    changes = []
    for session_id in track(service.session_ids(), "Checking for torn tails"):
        try:
            torn = _torn_bytes(service.log_path(session_id)) if dry_run else service.repair_torn_tail(session_id)
        except (SessionsError, OSError) as exc:
            changes.append(f"{session_id}: could not check the log, left as is: {exc}")
            continue
        if torn:
            verb = "would cut" if dry_run else "cut"
            changes.append(
                f"{session_id}: {verb} a torn tail of {torn} bytes (an interrupted write), kept in {service.trash_dir}"
            )
    return changes


def _rebuild_index(service: LocalSessionService, dry_run: bool, track: Track) -> list[str]:
    path = service.layout.index_path
    if dry_run:
        return [f"would rebuild {path} from {len(service.session_ids())} session logs"]
    before = _saved_index(path)
    indexed, problems = reindex(service, track)
    after = _saved_index(path) or {}
    done = f"rebuilt {path} from {indexed} session logs"
    if before is None:
        return [f"{done} (it was missing or unreadable)", *problems]
    added = len(after.keys() - before.keys())
    dropped = len(before.keys() - after.keys())
    refreshed = sum(before[sid] != after[sid] for sid in after.keys() & before.keys())
    if added or dropped or refreshed:
        return [f"{done}: {added} added, {dropped} dropped, {refreshed} brought up to date", *problems]
    return [f"{done}; it was already up to date", *problems]


def _saved_index(path: Path) -> dict[str, Any] | None:
    """Each session's newest saved row as plain JSON values, or None if the index is missing or unreadable."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    rows: dict[str, Any] = {}
    for line in data.splitlines():
        try:
            row = msgspec.json.decode(line)
        except (msgspec.DecodeError, RecursionError):
            continue
        session = row.get("session") if isinstance(row, dict) else None
        log = row.get("log") if isinstance(row, dict) else None
        if isinstance(session, dict) and isinstance(session.get("id"), str) and isinstance(log, dict):
            # What the row says and which log bytes it covers; not when it was taken.
            rows[session["id"]] = (session, log.get("size"), log.get("ino"), log.get("ctime_ns"))
    return rows


TEMPORARY_AGE_SECS: Final = 3600.0
"""A temporary file this old was left by a write that was interrupted; a live one is younger."""


def _remove_temporary_files(service: LocalSessionService, dry_run: bool, track: Track) -> list[str]:
    """Move to ``trash/`` the half-written files (``.*.tmp``) a killed merge, import or index save left."""
    changes = []
    now = time.time()
    for folder in (service.sessions_dir, service.root):
        with os.scandir(folder) as entries:
            leftovers = [
                Path(entry.path)
                for entry in entries
                if entry.name.startswith(".")
                and entry.name.endswith(".tmp")
                and entry.is_file(follow_symlinks=False)
                and now - entry.stat(follow_symlinks=False).st_mtime > TEMPORARY_AGE_SECS
            ]
        for path in sorted(leftovers):
            if dry_run:
                changes.append(f"{path.name}: would move this file left by an interrupted write to trash/")
                continue
            kept = move_to_trash(path, service.trash_dir, durable=service.durability == "fsync")
            changes.append(f"{path.name}: a file left by an interrupted write, moved to {kept}")
    return changes


DOCTOR_STEPS: Final = (
    DoctorStep("remove temporary files", _remove_temporary_files),
    DoctorStep("merge conflict copies", _merge_conflict_copies),
    DoctorStep("repair torn tails", _repair_torn_tails),
    DoctorStep("rebuild the index", _rebuild_index),
)


def doctor(
    service: LocalSessionService, *, dry_run: bool = False, track: Track = _no_progress
) -> list[tuple[str, list[str]]]:
    """Run every :data:`DOCTOR_STEPS` step; with ``dry_run`` nothing is changed, only reported.

    :returns: each step's name with the lines describing what it changed (or would change).
    """
    return [(step.name, step.run(service, dry_run, track)) for step in DOCTOR_STEPS]


def _torn_bytes(path: Path) -> int:
    """Bytes after the last newline of ``path``, read from the end without reading the whole log."""
    with open(path, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        pos = end
        while pos > 0:
            step = min(pos, 1 << 16)
            pos -= step
            f.seek(pos)
            newline = f.read(step).rfind(b"\n")
            if newline >= 0:
                return end - (pos + newline + 1)
        return end
