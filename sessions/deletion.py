"""Deleting sessions into the trash, restoring them, and emptying the trash.

A deleted session's log (and any sync conflict copies beside it) moves to
``ROOT/trash/deleted/``, whole and unchanged, under the session's append lock,
so no append is ever split between the two places: one that took the lock
first is in the moved log, and one that comes after fails with
:class:`~sessions.SessionNotFound`. :func:`purge_trash` is the only thing that
ever removes a log.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Final

from eventlog import _fs, ensure_private_dir, move_to_trash, sync_dir
from sessions._layout import LOG_SUFFIX
from sessions.errors import SessionExists, SessionNotFound
from sessions.models import TrashedSession
from sessions.protocol import SESSION_NAME, check_session_id, is_session_id
from sessions.rewrite import REPLACED

if TYPE_CHECKING:
    from sessions.store import LocalSessionService

__all__ = ["delete_session", "list_trash", "purge_trash", "restore_session"]

DELETED: Final = "deleted"
"""The folder of ``trash/`` that holds deleted sessions."""
_DELETED_NAME: Final = re.compile(rf"(?P<id>{SESSION_NAME.pattern}){re.escape(LOG_SUFFIX)}(?:\.\d+)?")
"""``<id>.jsonl``, or ``<id>.jsonl.N`` for a session deleted again after it was restored."""


def delete_session(service: LocalSessionService, session_id: str) -> None:
    """Move the session's log (and its conflict copies) to ``trash/deleted/``.

    :raises SessionNotFound: if there is no such session.
    :raises SessionBusy: if a writer held the session's lock for longer than ``lock_timeout``.
    """
    path = service.log_path(session_id)
    folder = service.trash_dir / DELETED
    durable = service.durability == "fsync"
    with service.session_lock(session_id):
        if not os.path.lexists(path):
            raise SessionNotFound(f"no session {session_id} in {service.root}")
        ensure_private_dir(folder, durable=durable)
        for copy in service.copies_of(session_id):
            move_to_trash(copy, folder, durable=durable)
        move_to_trash(path, folder, name=path.name, durable=durable)


def list_trash(service: LocalSessionService) -> list[TrashedSession]:
    """The deleted sessions in the trash, most recently deleted first."""
    folder = service.trash_dir / DELETED
    found = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    for entry in entries:
        match = _DELETED_NAME.fullmatch(entry.name)
        # A conflict copy deleted with its session matches the pattern too, but its name is no session id.
        if match is None or not is_session_id(match["id"]) or not entry.is_file(follow_symlinks=False):
            continue
        st = entry.stat(follow_symlinks=False)
        # The move set ctime: when the log was deleted, whatever its own times say.
        deleted_at = dt.datetime.fromtimestamp(st.st_ctime_ns / 1e9, dt.UTC)
        found.append(TrashedSession(id=match["id"], deleted_at=deleted_at, size=st.st_size, path=entry.path))
    found.sort(key=lambda t: (t.deleted_at, t.path), reverse=True)
    return found


def restore_session(service: LocalSessionService, session_id: str) -> None:
    """Bring the most recently deleted log of a session back from the trash, whole.

    :raises SessionNotFound: if the trash holds no log of that session.
    :raises SessionExists: if the session exists again (a new one with that id, or restored already).
    """
    check_session_id(session_id)
    candidates = [t for t in list_trash(service) if t.id == session_id]
    if not candidates:
        raise SessionNotFound(f"no deleted session {session_id} in {service.trash_dir / DELETED}")
    target = service.log_path(session_id)
    with service.session_lock(session_id):
        if os.path.lexists(target):
            raise SessionExists(f"session {session_id} exists in {service.root}; nothing was restored")
        service.refuse_case_clash(session_id)
        # link then unlink, not rename: rename would replace a log created meanwhile by a process
        # that does not take our lock (a sync tool).
        source = Path(candidates[0].path)
        try:
            _fs.link(source, target)
        except FileExistsError:
            raise SessionExists(f"session {session_id} exists in {service.root}; nothing was restored") from None
        _fs.unlink(source)
        if service.durability == "fsync":
            sync_dir(target.parent)
            sync_dir(source.parent)


def purge_trash(service: LocalSessionService, older_than_secs: float) -> list[Path]:
    """Remove for good what has been in the trash longer than ``older_than_secs``: deleted sessions,
    logs whose events were replaced, torn tails and merged conflict copies. The only thing that ever
    removes a log.

    :returns: the files removed.
    """
    cutoff = dt.datetime.now(dt.UTC).timestamp() - older_than_secs
    removed = []
    for folder in (service.trash_dir, service.trash_dir / DELETED, service.trash_dir / REPLACED):
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_ctime < cutoff:
                _fs.unlink(entry.path)
                removed.append(Path(entry.path))
    if removed and service.durability == "fsync":
        for folder in {path.parent for path in removed}:
            sync_dir(folder)
    return sorted(removed)
