"""Moving sessions in and out of a store: export to a file, import from one."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import Final, NamedTuple

import msgspec

from eventlog import (
    FORMAT_VERSION,
    KIND_HEADER,
    LogChanged,
    UnsafeLogPath,
    _fs,
    decode_record,
    merge_into,
    sync_dir,
    sync_file,
    verify_log,
)
from sessions.errors import ImportRefused, SessionNotFound, SyncMergeError, UnsafeStorePath
from sessions.models import StoredEvent
from sessions.protocol import check_session_id
from sessions.store import LocalSessionService

__all__ = [
    "EXPORT_FORMATS",
    "ImportRefused",
    "Imported",
    "event_document",
    "export_session",
    "import_log",
    "import_session",
    "metadata_document",
]

EXPORT_FORMATS: Final = ("jsonl", "json", "markdown")


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
            "metadata": metadata_document(service, session_id),
            "events": [event_document(e) for e in stored],
        }
        return msgspec.json.format(_pretty.encode(document), indent=2) + b"\n"
    if fmt == "markdown":
        from sessions.cli.render import markdown_transcript

        timeline = [
            (e.created_at, standard)
            for e in stored
            for standard in service.deserialize_event(e.event_type, e.event_data).standard()
        ]
        return markdown_transcript(session, timeline).encode()
    raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")


def metadata_document(service: LocalSessionService, session_id: str) -> dict[str, object]:
    """The session's metadata, each value as JSON: a string that holds a JSON object or array (as applications
    often store settings) is given parsed, any other value as it is."""
    values: dict[str, object] = {}
    for key, value in service.metadata(session_id).items():
        values[key] = value
        if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
            with contextlib.suppress(msgspec.DecodeError, RecursionError):
                values[key] = msgspec.json.decode(value)
    return values


def event_document(event: StoredEvent) -> dict[str, object]:
    """One event as ``export --format json`` and ``show --json`` write it: the names of the log's own lines
    (``id``, ``parent``, ``inv``, ``type``, ``ts``, ``data``, as ``show --raw`` prints them), ``data`` as JSON."""
    return {
        "id": event.id,
        "parent": event.parent_id,
        "inv": event.invocation_id,
        "type": event.event_type,
        "ts": event.created_at,
        "data": msgspec.Raw(event.event_data.encode()),
    }


def _read_regular(path: Path, session_id: str, service: LocalSessionService) -> bytes:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise SessionNotFound(f"no session {session_id} in {service.root}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeStorePath(f"{path} is not a regular file (a symlink?); it was not exported")
    return path.read_bytes()


class Imported(NamedTuple):
    """What :func:`import_session` did."""

    session_id: str
    merged: bool
    """False: the session was new to the store. True: it was there, and the file was merged into it."""
    added_events: int
    """Events the store did not have before."""


def import_session(service: LocalSessionService, path: Path) -> str:
    """Add the session log at ``path`` (as written by ``export --format jsonl``) to the store.

    See :func:`import_log`, which this calls; returns the session's id.
    """
    return import_log(service, path.read_bytes(), str(path)).session_id


def import_log(service: LocalSessionService, data: bytes, name: str) -> Imported:
    """Add a session log (the bytes ``export --format jsonl`` wrote) to the store.

    The whole log is checked before anything is written. A session the store does not have is added byte for
    byte; one it has is merged with it as a sync merge does (:func:`eventlog.merge_into`, under the session's
    lock): every event of both is kept, the newer value of each fact wins, and nothing is overwritten. The
    merged-in copy is kept in ``ROOT/trash/``.

    :param name: what to call the source in messages (a file name, or "standard input").
    :raises ImportRefused: if the data is not a complete, undamaged session log.
    :raises SessionBusy: if the session is being written for longer than ``lock_timeout``.
    """
    session_id = _check_header(name, data)
    target = service.log_path(session_id)
    staging = service.sessions_dir / f".import-{session_id}-{os.getpid()}.tmp"
    fd = _fs.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        _fs.write_all(fd, data)
        if service.durability == "fsync":
            sync_file(fd)
        os.close(fd)
        fd = -1
        _check_log(name, staging, len(data))
        if os.path.lexists(target):
            return _merge(service, session_id, staging)
        service.refuse_case_clash(session_id)
        # link() refuses an existing name, so a session created meanwhile is never overwritten.
        try:
            _fs.link(staging, target)
        except FileExistsError:
            return _merge(service, session_id, staging)
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            if not _create_exclusive(target, data, durable=service.durability == "fsync"):
                return _merge(service, session_id, staging)
    finally:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            _fs.unlink(staging)
    if service.durability == "fsync":
        sync_dir(service.sessions_dir)
    session = service.get_session(session_id)  # index it
    service.close()
    return Imported(session_id, merged=False, added_events=session.event_count if session else 0)


def _merge(service: LocalSessionService, session_id: str, staging: Path) -> Imported:
    """Merge the staged log into the session's, as a sync conflict copy is merged."""
    target = service.log_path(session_id)
    before = service.get_session(session_id)
    try:
        with service.session_lock(session_id):
            merge_into(target, [staging], trash_dir=service.trash_dir, durable=service.durability == "fsync")
    except LogChanged as exc:
        raise SyncMergeError(f"session {session_id}: {exc}") from exc
    except UnsafeLogPath as exc:
        raise UnsafeStorePath(f"session {session_id}: {exc}") from exc
    after = service.get_session(session_id)
    service.close()
    added = (after.event_count if after else 0) - (before.event_count if before else 0)
    return Imported(session_id, merged=True, added_events=max(added, 0))


_NO_HARD_LINKS: Final = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}
"""What link() fails with on file systems without hard links (FAT, exFAT, some network and FUSE mounts)."""


def _create_exclusive(target: Path, data: bytes, *, durable: bool) -> bool:
    """Write ``target`` only if it does not exist (False if it does); a crash part-way leaves a torn tail that
    ``doctor`` cuts."""
    try:
        fd = _fs.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return False
    try:
        _fs.write_all(fd, data)
        if durable:
            sync_file(fd)
    finally:
        os.close(fd)
    return True


def _check_header(name: str, data: bytes) -> str:
    """The session id of the log in ``data``, from its header line."""
    if not data:
        raise ImportRefused(f"{name} is empty; nothing was imported")
    first = data.split(b"\n", 1)[0]
    try:
        header = decode_record(first)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise ImportRefused(
            f"{name} is not a session log (its first line is not a log record: {exc}); "
            "import takes files written by `sessions export ID --format jsonl`"
        ) from None
    if header.k != KIND_HEADER:
        raise ImportRefused(f"{name} does not start with a session header line; nothing was imported")
    try:
        session_id = check_session_id(header.id)
    except ValueError:
        raise ImportRefused(
            f"{name}: the header's session id {header.id!r} is not a valid session id; nothing was imported"
        ) from None
    if header.v is not None and header.v > FORMAT_VERSION:
        raise ImportRefused(
            f"{name} uses log format {header.v}, newer than this version understands ({FORMAT_VERSION}); "
            "upgrade jsonl-sessions to import it"
        )
    return session_id


def _check_log(name: str, staged: Path, size: int) -> None:
    """Every line of the staged copy reads, and it ends with a whole line."""
    report = verify_log(staged)
    if report.size != size:
        raise ImportRefused(f"{name} changed while it was being read; nothing was imported, try again")
    if report.damaged:
        first_damage = report.damaged[0]
        raise ImportRefused(
            f"{name} has {len(report.damaged)} damaged line(s), the first at byte {first_damage.offset} "
            f"({first_damage.detail}); nothing was imported"
        )
