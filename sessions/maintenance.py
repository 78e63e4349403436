"""Store maintenance on a :class:`LocalSessionService`: id prefixes, reindex, doctor, export and import."""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final, NamedTuple

import msgspec

from eventlog import FORMAT_VERSION, KIND_HEADER, decode_record, move_to_trash, sync_dir, sync_file, verify_log
from sessions.conflicts import merge_conflict_copies
from sessions.errors import SessionNotFound, SessionsError, UnsafeStorePath
from sessions.events import deserialize_event
from sessions.protocol import check_session_id
from sessions.store import LocalSessionService

__all__ = [
    "DOCTOR_STEPS",
    "EXPORT_FORMATS",
    "AmbiguousSessionId",
    "DoctorStep",
    "ImportRefused",
    "Track",
    "doctor",
    "export_session",
    "import_session",
    "reindex",
    "resolve_session_id",
]

Track = Callable[[Sequence[str], str], Iterable[str]]
"""Wraps the session ids a long operation walks through, to show progress: ``track(ids, description)``."""

EXPORT_FORMATS: Final = ("jsonl", "json", "markdown")


def _no_progress(ids: Sequence[str], description: str) -> Iterable[str]:
    return ids


class AmbiguousSessionId(SessionsError, ValueError):
    """A session id prefix matches more than one session."""


class ImportRefused(SessionsError, ValueError):
    """A file given to :func:`import_session` is not a log that can be imported; nothing was written."""


def resolve_session_id(service: LocalSessionService, prefix: str) -> str:
    """The one session whose id starts with ``prefix`` (a whole id works too), as git resolves commits.

    :raises SessionNotFound: if no session matches.
    :raises AmbiguousSessionId: if several do.
    """
    wanted = prefix.strip().lower()
    matches = [sid for sid in service.session_ids() if sid.startswith(wanted)] if wanted else []
    if not matches:
        raise SessionNotFound(f"no session {prefix!r} in {service.root}; `sessions list --all` shows the ids")
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise AmbiguousSessionId(
            f"session id prefix {prefix!r} matches {len(matches)} sessions ({shown}); give more characters"
        )
    return matches[0]


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


# -- export and import --------------------------------------------------------------------

_pretty: Final = msgspec.json.Encoder()


def export_session(service: LocalSessionService, session_id: str, fmt: str) -> bytes:
    """The session as ``jsonl`` (the log byte for byte), ``json`` or ``markdown`` (both for people).

    :raises SessionNotFound: if the session does not exist.
    :raises ValueError: for an unknown format.
    """
    if fmt == "jsonl":
        return _read_regular(service.log_path(session_id), session_id, service)
    session = service.get_session(session_id)
    if session is None:
        raise SessionNotFound(f"no session {session_id} in {service.root}")
    stored = service.load_events(session_id)
    if fmt == "json":
        document = {
            "session": session,
            "events": [
                {
                    "id": e.id,
                    "parent_id": e.parent_id,
                    "invocation_id": e.invocation_id,
                    "type": e.event_type,
                    "created_at": e.created_at,
                    "data": msgspec.Raw(e.event_data.encode()),
                }
                for e in stored
            ],
        }
        return msgspec.json.format(_pretty.encode(document), indent=2) + b"\n"
    if fmt == "markdown":
        from sessions.cli.render import markdown_transcript

        timeline = [(e.created_at, deserialize_event(e.event_type, e.event_data)) for e in stored]
        return markdown_transcript(session, timeline).encode()
    raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")


def _read_regular(path: Path, session_id: str, service: LocalSessionService) -> bytes:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise SessionNotFound(f"no session {session_id} in {service.root}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeStorePath(f"{path} is not a regular file (a symlink?); it was not exported")
    return path.read_bytes()


def import_session(service: LocalSessionService, path: Path) -> str:
    """Add the session log at ``path`` (as written by ``export --format jsonl``) to the store, byte for byte.

    The whole file is checked before anything is written.

    :returns: the imported session's id.
    :raises ImportRefused: if the file is not a complete, undamaged session log, or its session already exists.
    :raises OSError: if the file cannot be read.
    """
    data = path.read_bytes()
    session_id = _check_importable(path, data)
    target = service.log_path(session_id)
    if os.path.lexists(target):
        raise ImportRefused(
            f"session {session_id} already exists in {service.root}; nothing was imported "
            f"(`sessions show {session_id[:13]}` shows it)"
        )
    staging = service.sessions_dir / f".import-{session_id}-{os.getpid()}.tmp"
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
        if service.durability == "fsync":
            sync_file(fd)
        os.close(fd)
        fd = -1
        # link() refuses an existing name, so a session created meanwhile is never overwritten.
        try:
            os.link(staging, target)
        except FileExistsError:
            raise ImportRefused(
                f"session {session_id} already exists in {service.root}; nothing was imported"
            ) from None
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            _create_exclusive(target, data, durable=service.durability == "fsync", session_id=session_id)
    finally:
        if fd >= 0:
            os.close(fd)
        os.unlink(staging)
    if service.durability == "fsync":
        sync_dir(service.sessions_dir)
    service.get_session(session_id)  # index it
    service.close()
    return session_id


_NO_HARD_LINKS: Final = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}
"""What link() fails with on file systems without hard links (FAT, exFAT, some network and FUSE mounts)."""


def _create_exclusive(target: Path, data: bytes, *, durable: bool, session_id: str) -> None:
    """Write ``target`` only if it does not exist; a crash part-way leaves a torn tail that ``doctor`` cuts."""
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise ImportRefused(
            f"session {session_id} already exists in {target.parent.parent}; nothing was imported"
        ) from None
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(data)
        if durable:
            sync_file(fd)
    finally:
        os.close(fd)


def _check_importable(path: Path, data: bytes) -> str:
    if not data:
        raise ImportRefused(f"{path} is empty; nothing was imported")
    first = data.split(b"\n", 1)[0]
    try:
        header = decode_record(first)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise ImportRefused(
            f"{path} is not a session log (its first line is not a log record: {exc}); "
            "import takes files written by `sessions export ID --format jsonl`"
        ) from None
    if header.k != KIND_HEADER:
        raise ImportRefused(f"{path} does not start with a session header line; nothing was imported")
    try:
        session_id = check_session_id(header.id)
    except ValueError:
        raise ImportRefused(
            f"{path}: the header's session id {header.id!r} is not a UUID; nothing was imported"
        ) from None
    if header.v is not None and header.v > FORMAT_VERSION:
        raise ImportRefused(
            f"{path} uses log format {header.v}, newer than this version understands ({FORMAT_VERSION}); "
            "upgrade jsonl-sessions to import it"
        )
    report = verify_log(path)
    if report.size != len(data):
        raise ImportRefused(f"{path} changed while it was being read; nothing was imported, try again")
    if report.damaged:
        first_damage = report.damaged[0]
        raise ImportRefused(
            f"{path} has {len(report.damaged)} damaged line(s), the first at byte {first_damage.offset} "
            f"({first_damage.detail}); nothing was imported"
        )
    return session_id
