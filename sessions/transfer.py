"""Moving sessions in and out of a store: export to a file, import from one."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Final

import msgspec

from eventlog import FORMAT_VERSION, KIND_HEADER, _fs, decode_record, sync_dir, sync_file, verify_log
from sessions.errors import ImportRefused, SessionNotFound, UnsafeStorePath
from sessions.events import deserialize_event
from sessions.protocol import check_session_id
from sessions.store import LocalSessionService

__all__ = ["EXPORT_FORMATS", "ImportRefused", "export_session", "import_session"]

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
    fd = _fs.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        _fs.write_all(fd, data)
        if service.durability == "fsync":
            sync_file(fd)
        os.close(fd)
        fd = -1
        # link() refuses an existing name, so a session created meanwhile is never overwritten.
        try:
            _fs.link(staging, target)
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
        _fs.unlink(staging)
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
        fd = _fs.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise ImportRefused(
            f"session {session_id} already exists in {target.parent.parent}; nothing was imported"
        ) from None
    try:
        _fs.write_all(fd, data)
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
