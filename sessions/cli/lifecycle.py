"""The subcommands that change which sessions (and which events) there are: ``rm``, ``restore``, ``trash``,
``gc``, ``fork`` and ``rewind``. Like :mod:`sessions.cli.commands`, each takes the parsed arguments and the
store folder and returns an exit code.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

from rich import box
from rich.table import Table

from eventlog import utcnow
from sessions import LocalSessionService, maintenance, shortid
from sessions.cli.commands import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, open_store, print_json
from sessions.cli.render import make_console, time_ago
from sessions.deletion import DELETED
from sessions.errors import SessionExists, SessionNotFound, SessionsError
from sessions.maintenance import AmbiguousSessionId

__all__ = ["LIFECYCLE_COMMANDS", "resolve_event_id", "size_text"]

SECONDS_PER_DAY: Final = 86400


def _error(message: str) -> None:
    print(f"sessions: error: {message}", file=sys.stderr)


def _exit_code(exc: SessionsError) -> int:
    """The exit code ``main`` would give this error: 2 for an unknown or ambiguous id, else 3."""
    return EXIT_USAGE if isinstance(exc, SessionNotFound | AmbiguousSessionId) else EXIT_FAILED


def _unique(prefix: str, candidates: Iterable[str]) -> list[str]:
    """The candidates ``prefix`` names: itself, or those it starts or whose random part it starts (a short id)."""
    try:
        found = shortid.resolve(prefix, set(candidates))
    except shortid.Ambiguous as exc:
        return exc.matches
    return [] if found is None else [found]


def _listed(matches: list[str]) -> str:
    return ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")


def resolve_event_id(service: LocalSessionService, session_id: str, prefix: str) -> str:
    """The one event of the session (on any branch) whose id starts with ``prefix``.

    :raises UsageError: if none does, or several do.
    """
    matches = _unique(prefix, (e.id for e in service.load_tree(session_id).events))
    if not matches:
        raise UsageError(
            f"no event {prefix!r} in session {session_id}; `sessions show {session_id} --branches` shows them"
        )
    if len(matches) > 1:
        raise UsageError(
            f"event id prefix {prefix!r} matches {len(matches)} events ({_listed(matches)}); give more characters"
        )
    return matches[0]


def size_text(size: int) -> str:
    """A byte count the way people read it: ``812 B``, ``1.2 KiB``, ``3.4 MiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


# -- rm and restore -----------------------------------------------------------------------


def _rm(args: argparse.Namespace, root: Path) -> int:
    service = open_store(root)
    code = EXIT_OK
    ids: list[str] = []
    for prefix in args.ids:  # every id is resolved first: a mistake in one does not stop the others
        try:
            session_id = maintenance.resolve_session_id(service, prefix)
        except (SessionNotFound, AmbiguousSessionId) as exc:
            _error(str(exc))
            code = max(code, EXIT_USAGE)
            continue
        if session_id not in ids:
            ids.append(session_id)
    folder = service.trash_dir / DELETED
    for session_id in ids:
        before = _names(folder)
        try:
            service.delete_session(session_id)
        except SessionsError as exc:
            _error(str(exc))
            code = max(code, _exit_code(exc))
            continue
        moved = sorted(n for n in _names(folder) - before if n.startswith(session_id))
        print(f"deleted {session_id}: moved {', '.join(moved) or 'its log'} to {folder}")
    return code


def _names(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder))
    except FileNotFoundError:
        return set()


def _restore(args: argparse.Namespace, root: Path) -> int:
    service = open_store(root)
    trash = service.list_trash()
    # A deleted session is no longer in the store, so its id is looked for among both.
    matches = _unique(args.id, [*service.session_ids(), *(t.id for t in trash)])
    if not matches:
        raise SessionNotFound(
            f"no session {args.id!r} in the trash ({service.trash_dir / DELETED}) or in {root}; "
            "`sessions trash` lists the deleted ones"
        )
    if len(matches) > 1:
        raise AmbiguousSessionId(
            f"session id prefix {args.id!r} matches {len(matches)} sessions ({_listed(matches)}); give more characters"
        )
    (session_id,) = matches
    source = next((t.path for t in trash if t.id == session_id), None)
    try:
        service.restore_session(session_id)
    except SessionExists as exc:
        raise SessionExists(f"{exc} (`sessions show {session_id[:13]}` shows the one there)") from None
    print(f"restored {session_id} from {source}")
    return EXIT_OK


# -- the trash and gc -----------------------------------------------------------------------


def _trash(args: argparse.Namespace, root: Path) -> int:
    if args.purge != (args.older_than is not None):
        raise UsageError(
            "--purge needs --older-than DAYS (what has been in the trash longer than that is removed for good)"
            if args.purge
            else "--older-than is for --purge; `sessions trash` alone lists the whole trash"
        )
    # A store that was never made has an empty trash: nothing to list or purge.
    service = open_store(root) if root.exists() else None
    trash_dir = root / "trash" if service is None else service.trash_dir
    if args.purge:
        removed = 0 if service is None else service.purge_trash(args.older_than * SECONDS_PER_DAY)
        if args.json:
            print_json({"removed": removed, "older_than_days": args.older_than})
        else:
            print(
                f"removed {removed} file(s) for good from {trash_dir} "
                f"(what had been there more than {args.older_than:g} day(s))"
            )
        return EXIT_OK
    trashed = [] if service is None else service.list_trash()
    if args.json:
        print_json(trashed)
        return EXIT_OK
    console = make_console()
    if not trashed:
        console.print(f"The trash is empty ({trash_dir / DELETED}).", markup=False)
        return EXIT_OK
    table = Table(box=box.SIMPLE_HEAD if console.is_terminal else None, show_edge=False, pad_edge=False)
    table.add_column("ID", no_wrap=True)
    table.add_column("Deleted", no_wrap=True)
    table.add_column("Size", justify="right", no_wrap=True)
    now = utcnow()
    for t in trashed:
        table.add_row(t.id, time_ago(t.deleted_at, now), size_text(t.size))
    console.print(table)
    console.print(f"{len(trashed)} deleted session log(s) in {trash_dir / DELETED}", markup=False)
    return EXIT_OK


def _gc(args: argparse.Namespace, root: Path) -> int:
    service = open_store(root)
    now = utcnow()
    cutoff = now - dt.timedelta(days=args.archived_older_than)
    due = [
        s for s in service.list_sessions(include_archived=True) if s.archived_at is not None and s.archived_at < cutoff
    ]
    due.sort(key=lambda s: (s.archived_at or now, s.id))
    code = EXIT_OK
    rows: list[dict[str, object]] = []
    for session in due:
        row: dict[str, object] = {
            "id": session.id,
            "directory": session.directory,
            "archived_at": session.archived_at,
            "trashed": False,
        }
        rows.append(row)
        if args.dry_run:
            continue
        try:
            service.delete_session(session.id)
        except SessionsError as exc:
            row["error"] = str(exc)
            code = max(code, _exit_code(exc))
            if not args.json:
                _error(str(exc))
        else:
            row["trashed"] = True
    if args.json:
        print_json(rows)
        return code
    days = f"{args.archived_older_than:g} day(s)"
    if not due:
        print(f"no session was archived more than {days} ago")
        return code
    verb = "would move" if args.dry_run else "moved"
    moved = [s for s, row in zip(due, rows, strict=True) if args.dry_run or row["trashed"]]
    print(f"{verb} {len(moved)} session(s) archived more than {days} ago to {service.trash_dir / DELETED}:")
    for session in moved:
        archived = time_ago(session.archived_at, now) if session.archived_at else "-"
        print(f"  {session.id}  archived {archived}  {session.directory or '-'}")
    if args.dry_run:
        print("dry run: nothing was changed")
    return code


# -- fork and rewind ------------------------------------------------------------------------


def _fork(args: argparse.Namespace, root: Path) -> int:
    service = open_store(root)
    session_id = maintenance.resolve_session_id(service, args.id)
    at = resolve_event_id(service, session_id, args.at) if args.at is not None else None
    fork = service.fork_session(session_id, at)
    if args.json:
        print_json(fork)
        return EXIT_OK
    print(fork.id)
    print(f"  forked from: {fork.forked_from}")
    print(f"  at event:    {fork.fork_event_id or '- (the session had no events)'}")
    print(f"  events:      {fork.event_count}")
    return EXIT_OK


def _rewind(args: argparse.Namespace, root: Path) -> int:
    service = open_store(root)
    session_id = maintenance.resolve_session_id(service, args.id)
    tree = service.load_tree(session_id)
    event_id = resolve_event_id(service, session_id, args.to)
    service.rewind(session_id, event_id)
    was = "" if tree.active_head in (None, event_id) else f" (it was {tree.active_head})"
    print(f"rewound {session_id}: its head is now {event_id}{was}")
    print(
        "The next message continues from there; the events after it stay in the log "
        f"(`sessions show {session_id[:13]} --branches` shows them)."
    )
    return EXIT_OK


LIFECYCLE_COMMANDS: Final[dict[str, Callable[[argparse.Namespace, Path], int]]] = {
    "rm": _rm,
    "restore": _restore,
    "trash": _trash,
    "gc": _gc,
    "fork": _fork,
    "rewind": _rewind,
}
