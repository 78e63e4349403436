"""``sessions search PATTERN``: which sessions said what, as ``grep`` would answer over the logs."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Final

from rich.text import Text as RichText

from sessions import shortid
from sessions.cli.commands import EXIT_DAMAGED, EXIT_OK, UsageError, open_store, print_json
from sessions.cli.listing import select_sessions
from sessions.cli.render import make_console
from sessions.search import Searcher

__all__ = ["EXIT_NO_MATCH", "SEARCH_COMMANDS"]

EXIT_NO_MATCH: Final = EXIT_DAMAGED
"""1, as ``grep`` exits when nothing matched."""


def _search(args: argparse.Namespace, root: Path) -> int:
    if args.recursive and args.dir is None:
        raise UsageError("-r/--recursive goes with --dir DIR: it adds the folders inside DIR")
    try:
        re.compile(args.pattern, re.IGNORECASE if args.ignore_case else 0)
    except re.error as exc:
        raise UsageError(f"{args.pattern!r} is not a regular expression: {exc}") from None
    service = open_store(root)
    searcher = Searcher(
        args.pattern,
        types=args.type,
        since=args.since,
        ignore_case=args.ignore_case,
        deserialize=service.deserialize_event,
    )
    all_ids = service.session_ids()
    if args.dir is not None or args.since is not None:
        # --since also skips whole sessions not active since then: their events are all older.
        chosen = [
            s.id
            for s in select_sessions(
                service, include_archived=True, folder=args.dir, recursive=args.recursive, since=args.since
            )
        ]
    else:
        chosen = all_ids  # every log, without reading a summary of each
    short = shortid.short_ids(all_ids)
    cells = shortid.display_ids(all_ids)
    console = make_console()
    found = 0
    as_json: list[dict[str, object]] = []
    for session_id in chosen:
        for hit in searcher.search_log(session_id, service.log_path(session_id)):
            found += 1
            if args.json:
                as_json.append(
                    {
                        "session_id": hit.session_id,
                        "short_id": short.get(hit.session_id, hit.session_id),
                        "event_id": hit.event_id,
                        "type": hit.event_type,
                        "created_at": hit.created_at,
                        "snippet": hit.snippet,
                        "match": list(hit.match),
                    }
                )
                continue
            line = RichText(f"{cells.get(hit.session_id, hit.session_id)}  ", style="bold")
            line.append(f"{(shortid.random_part(hit.event_id) or hit.event_id)[:8]}  ", style="dim")
            line.append(f"{hit.event_type}  ", style="cyan")
            start, end = hit.match
            line.append(hit.snippet[:start])
            line.append(hit.snippet[start:end], style="bold red")
            line.append(hit.snippet[end:])
            console.print(line, overflow="ellipsis", no_wrap=console.is_terminal, crop=console.is_terminal)
    if args.json:
        print_json(as_json)
    return EXIT_OK if found else EXIT_NO_MATCH


SEARCH_COMMANDS: Final = {"search": _search}
