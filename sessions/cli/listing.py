"""``sessions list``: sessions a person can tell apart, in a table that fits the terminal."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from msgspec import structs
from rich import box
from rich.table import Table
from rich.text import Text as RichText

from eventlog import utcnow
from sessions import LocalSessionService, shortid
from sessions.cli.commands import EXIT_OK, UsageError, open_store, print_json
from sessions.cli.render import make_console
from sessions.models import StoredSession
from sessions.titles import title_of

__all__ = ["LISTING_COMMANDS", "Listed", "age_text", "folder_text", "parse_since", "select_sessions"]

_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)", re.IGNORECASE)
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """A ``--since`` value as a UTC time: a duration back from now (``30m``, ``2h``, ``3d``, ``1w``) or an ISO
    date or time (``2026-01-31``, ``2026-01-31T09:00``, read as UTC unless it names its zone).

    :raises argparse.ArgumentTypeError: for anything else.
    """
    now = now or utcnow()
    match = _DURATION.fullmatch(text.strip())
    if match:
        return now - dt.timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()])
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a duration (30m, 2h, 3d, 1w) nor a date (2026-01-31, 2026-01-31T09:00)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _under(path: str | None, folder: str) -> bool:
    return path is not None and (path == folder or path.startswith(folder.rstrip("/") + "/"))


def select_sessions(
    service: LocalSessionService,
    *,
    include_archived: bool = False,
    folder: Path | None = None,
    recursive: bool = False,
    since: dt.datetime | None = None,
    limit: int | None = None,
) -> list[StoredSession]:
    """The sessions ``list`` (and ``search``) look at, most recently active first.

    :param folder: only those whose directory or git root is ``folder`` (or, with ``recursive``, inside it).
    :param since: only those active at or after this time.
    """
    sessions = service.list_sessions(include_archived=include_archived)
    if folder is not None:
        wanted = str(folder.expanduser().resolve())
        if recursive:
            sessions = [s for s in sessions if _under(s.directory, wanted) or _under(s.git_root, wanted)]
        else:
            sessions = [s for s in sessions if wanted in (s.directory, s.git_root)]
    if since is not None:
        sessions = [s for s in sessions if s.updated_at >= since]
    return sessions[:limit] if limit is not None else sessions


class Listed:
    """A session with what people tell it apart by: short id and title."""

    def __init__(self, session: StoredSession, short_id: str, title: str, cell: str | None = None) -> None:
        self.session = session
        self.short_id = short_id
        self.title = title
        self.cell = short_id if cell is None else cell
        """What the table's ID column shows: the short id, or a unique prefix cut with ``…`` that resolves."""

    def as_json(self) -> dict[str, object]:
        return {"short_id": self.short_id, "title": self.title, **structs.asdict(self.session)}


def listed(service: LocalSessionService, sessions: Sequence[StoredSession]) -> list[Listed]:
    """Short ids (unique in the whole store, so they resolve anywhere) and titles for ``sessions``."""
    every = [*service.session_ids(), *(s.id for s in sessions)]
    short = shortid.short_ids(every)
    cells = shortid.display_ids(every)
    return [Listed(s, short[s.id], title_of(service, s.id), cells[s.id]) for s in sessions]


def age_text(when: dt.datetime, now: dt.datetime) -> str:
    """How long ago, in few characters: ``now``, ``5m ago``, ``3h ago``, ``2d ago``, ``6w ago``."""
    seconds = (now - when).total_seconds()
    if seconds < 60:
        return "now" if seconds > -60 else "future"
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    raise AssertionError("unreachable")


def folder_text(path: str | None, width: int | None = None) -> str:
    """A folder for a narrow column: the home folder as ``~``, cut at the start (``…/deep/project``) to fit."""
    if not path:
        return "-"
    home = os.path.expanduser("~")
    if home not in ("", "/") and _under(path, home):
        path = "~" + path[len(home) :]
    if width is not None and len(path) > width:
        path = "…" + path[len(path) - width + 1 :]
    return path


def _list(args: argparse.Namespace, root: Path) -> int:
    if args.recursive and args.dir is None:
        raise UsageError("-r/--recursive goes with --dir DIR: it adds the folders inside DIR")
    if not root.exists():
        if args.json:
            print("[]")
        else:
            print(f"No sessions yet: {root} does not exist. `sessions chat` starts one.")
        return EXIT_OK
    service = open_store(root)
    sessions = select_sessions(
        service,
        include_archived=args.all,
        folder=args.dir,
        recursive=args.recursive,
        since=args.since,
        limit=args.limit,
    )
    rows = listed(service, sessions)
    if args.json:
        print_json([row.as_json() for row in rows])
        return EXIT_OK
    console = make_console()
    if not rows:
        console.print(f"No sessions in {root}" + ("" if args.all else " (--all includes archived ones)"), markup=False)
        return EXIT_OK
    now = utcnow()
    cells = [(row, age_text(row.session.updated_at, now), str(row.session.event_count)) for row in rows]
    # Widths decided here, not by rich: the short columns stay whole, the folder gets up to a third of what is
    # left (cut at its start, where it says least) and the title the rest.
    fixed = [
        max(len(header), *(len(c) for c in column))
        for header, column in (
            ("ID", [r.cell for r, *_ in cells]),
            ("Active", [a for _, a, _ in cells]),
            ("Events", [e for _, _, e in cells]),
        )
    ]
    boxed = console.is_terminal
    room = console.width - sum(fixed) - (8 if boxed else 4)  # the four gaps between columns
    longest_folder = max(len("Folder"), *(len(folder_text(r.session.directory)) for r, *_ in cells))
    folder_width = min(longest_folder, max(10, room // 3))
    longest_title = max(len(r.title or "(no message yet)") + (11 if r.session.archived_at else 0) for r, *_ in cells)
    title_width = max(10, min(longest_title, room - folder_width))
    folder_width = max(1, min(folder_width, room - title_width))  # rich would cut every column, ids too
    table = Table(
        box=box.SIMPLE_HEAD if boxed else None,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1),
        collapse_padding=True,
    )
    table.add_column("ID", no_wrap=True, width=fixed[0])
    table.add_column("Title", no_wrap=True, overflow="ellipsis", width=title_width)
    table.add_column("Active", no_wrap=True, width=fixed[1])
    table.add_column("Events", justify="right", no_wrap=True, width=fixed[2])
    table.add_column("Folder", no_wrap=True, width=folder_width)
    for row, age, events in cells:
        title = RichText(row.title or "(no message yet)", style="" if row.title else "dim")
        if row.session.archived_at is not None:
            title = RichText.assemble(("(archived) ", "dim"), title)
        table.add_row(row.cell, title, age, events, folder_text(row.session.directory, folder_width))
    console.print(table)
    return EXIT_OK


LISTING_COMMANDS: Final = {"list": _list}
