"""``sessions show``: a session's conversation, streamed as it is read, through a pager on a terminal.

``--follow`` keeps printing the events another process appends, until Ctrl-C. ``--json`` is the session,
its metadata (as JSON values) and its events under the names the log's own lines use (``--raw``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

import msgspec
from rich.console import Console
from rich.text import Text as RichText

from eventlog import KIND_EVENT, KIND_HEAD, decode_record
from eventlog.reader import decode_each, iter_chunks, open_regular
from sessions import LocalSessionService, maintenance, shortid, transfer
from sessions.cli.commands import EXIT_OK, UsageError, open_store, print_json
from sessions.cli.render import event_text, make_console, time_ago
from sessions.errors import SessionNotFound
from sessions.models import StoredEvent, StoredSession

__all__ = ["FOLLOW_INTERVAL", "SHOW_COMMANDS", "pager"]

FOLLOW_INTERVAL: Final = 0.2
"""Seconds between looks at a followed log: one ``stat`` each."""


def _show(args: argparse.Namespace, root: Path) -> int:
    if args.raw and (args.tail is not None or args.branches or args.follow):
        raise UsageError("--raw prints the whole log as stored; not with --tail, --branches or --follow")
    if args.follow and (args.json or args.branches):
        raise UsageError("--follow prints the conversation as it grows; not with --json or --branches")
    service = open_store(root)
    session_id = maintenance.resolve_session_id(service, args.id)
    if args.raw or (args.json and args.tail is None and not args.branches):
        fmt = "jsonl" if args.raw else "json"
        sys.stdout.buffer.write(transfer.export_session(service, session_id, fmt))
        return EXIT_OK
    session = service.get_session(session_id)
    if session is None:
        raise SessionNotFound(f"no session {session_id} in {root}")
    if args.json:
        if args.branches:
            branches = service.load_tree(session.id).branches()
            print_json(
                {
                    "session": session,
                    "metadata": transfer.metadata_document(service, session_id),
                    "branches": [
                        {"head": b[-1].id, "active": n == 0, "events": [transfer.event_document(e) for e in b]}
                        for n, b in enumerate(branches)
                    ],
                }
            )
        else:
            stored = service.load_events(session_id, last=args.tail)
            events = [transfer.event_document(e) for e in stored]
            metadata = transfer.metadata_document(service, session_id)
            print_json({"session": session, "metadata": metadata, "events": events})
        return EXIT_OK
    # Where the log ends before it is read: --follow carries on from there (skipping what was already shown).
    size = os.stat(service.log_path(session_id)).st_size
    with pager(enabled=sys.stdout.isatty() and not args.follow and not args.no_pager) as console:
        _print_session(console, session)
        if args.branches:
            _print_branches(console, service, session)
            return EXIT_OK
        if args.tail is not None:
            stored = service.load_events(session_id, last=args.tail)
            console.print(f"(the last {len(stored)} of the active branch's events)", style="dim")
            for event in stored:
                _print_event(console, service, event.event_type, event.event_data)
            shown = {e.id for e in stored}
        else:
            shown = _print_active_branch(console, service, session_id)
        elsewhere = session.event_count - len(shown) if args.tail is None else 0
        if elsewhere > 0:
            console.print(
                f"({elsewhere} more event(s) sit on other branches, after a rewind or a sync merge; "
                f"`sessions show {args.id} --branches` shows them)",
                style="yellow",
            )
    if args.follow:
        _follow(console, service, session_id, size, shown)
    return EXIT_OK


def _print_active_branch(console: Console, service: LocalSessionService, session_id: str) -> set[str]:
    """Print the active branch; returns the ids printed.

    A straight log (one writer's, the common case) is printed as it is read, a chunk at a time, so a long
    session starts showing at once. At the first sign that it is not straight (an event that does not follow
    the one before, a rewind), the active branch is read whole and printed on from where the two part.
    """
    printed: list[str] = []
    if not service.copies_of(session_id):
        fd = open_regular(service.log_path(session_id))
        try:
            for offset, chunk in iter_chunks(fd, 0):
                records, _, _, _ = decode_each(chunk, offset)
                for record in records:
                    if record.k == KIND_HEAD or (
                        record.k == KIND_EVENT and record.parent != (printed[-1] if printed else None)
                    ):
                        return _print_rest_of_branch(console, service, session_id, printed)
                    if record.k == KIND_EVENT:
                        _print_event(console, service, record.type or "", bytes(record.data).decode())
                        printed.append(record.id)
        finally:
            os.close(fd)
        return set(printed)
    return _print_rest_of_branch(console, service, session_id, printed)


def _print_rest_of_branch(
    console: Console, service: LocalSessionService, session_id: str, printed: list[str]
) -> set[str]:
    active = service.load_events(session_id)
    common = 0
    while common < min(len(printed), len(active)) and printed[common] == active[common].id:
        common += 1
    if common < len(printed):
        console.print(
            f"(the last {len(printed) - common} event(s) above are on another branch; the active one goes on "
            f"from event {common}:)",
            style="yellow",
        )
    for event in active[common:]:
        _print_event(console, service, event.event_type, event.event_data)
    return {e.id for e in active}


def _print_event(console: Console, service: LocalSessionService, event_type: str, event_data: str) -> None:
    for standard in service.deserialize_event(event_type, event_data).standard():
        console.print(event_text(standard))


def _follow(console: Console, service: LocalSessionService, session_id: str, offset: int, seen: set[str]) -> None:
    """Print each event appended to the log from ``offset`` on, as it comes, until Ctrl-C (KeyboardInterrupt)."""
    path = service.log_path(session_id)
    console.print(f"(following {session_id}; Ctrl-C to stop)", style="dim")
    pending = b""
    while True:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            console.print("(the session was deleted)", style="yellow")
            return
        if st.st_size < offset:  # rewritten (a sync merge): read it again, printing only what is new
            offset, pending = 0, b""
        if st.st_size > offset:
            with open(path, "rb") as log:
                log.seek(offset)
                data = log.read(st.st_size - offset)
            offset += len(data)
            lines = (pending + data).split(b"\n")
            pending = lines.pop()  # not a whole line yet: a writer is in the middle of it
            for line in lines:
                try:
                    record = decode_record(line)
                except (msgspec.DecodeError, RecursionError):
                    continue
                if record.k == KIND_EVENT and record.id not in seen:
                    seen.add(record.id)
                    _print_event(console, service, record.type or "", bytes(record.data).decode())
        time.sleep(FOLLOW_INTERVAL)


@contextlib.contextmanager
def pager(*, enabled: bool) -> Iterator[Console]:
    """A console that writes through ``$PAGER`` (else ``less``, with ``LESS=FRX`` as git sets it) when
    ``enabled``, as the lines are made, so a long session starts showing at once; else stdout's console."""
    command = shlex.split(os.environ.get("PAGER", "") or "less") if enabled else []
    if not command or shutil.which(command[0]) is None or command == ["cat"]:
        yield make_console()
        return
    env = {**os.environ, "LESS": os.environ.get("LESS", "FRX")}
    process = subprocess.Popen(command, stdin=subprocess.PIPE, env=env)
    assert process.stdin is not None
    stream = io.TextIOWrapper(process.stdin, encoding="utf-8", errors="replace", write_through=True)
    try:
        yield make_console(stream, terminal=True)
    except BrokenPipeError:
        pass  # the user quit the pager: what they read was what they wanted
    finally:
        with contextlib.suppress(BrokenPipeError):
            stream.close()
        with contextlib.suppress(KeyboardInterrupt):
            process.wait()


def _print_session(console: Console, session: StoredSession) -> None:
    console.print(f"Session {session.id}", style="bold")
    console.print(f"  directory:   {session.directory or '-'}")
    console.print(f"  git root:    {session.git_root or '-'}")
    console.print(f"  created:     {session.created_at:%Y-%m-%d %H:%M:%S} UTC ({time_ago(session.created_at)})")
    console.print(f"  last active: {session.updated_at:%Y-%m-%d %H:%M:%S} UTC ({time_ago(session.updated_at)})")
    if session.archived_at is not None:
        console.print(f"  archived:    {session.archived_at:%Y-%m-%d %H:%M:%S} UTC")
    if session.server_session_id:
        console.print(f"  server id:   {session.server_session_id}")
    if session.forked_from is not None:
        console.print(f"  forked from: {session.forked_from} at event {session.fork_event_id or '-'}")
    console.print(f"  events:      {session.event_count}")
    console.print()


def _print_branches(console: Console, service: LocalSessionService, session: StoredSession) -> None:
    tree = service.load_tree(session.id)
    branches = tree.branches()
    if not branches:
        console.print("(no events yet)", style="dim")
        return
    short = shortid.short_ids([e.id for e in tree.events])
    for n, branch in enumerate(branches):
        # What this branch shares with an earlier one is shown once, there; here only where it goes on from it.
        shared, earlier = max(
            ((_common_prefix(branch, branches[k]), k) for k in range(n)), key=lambda t: (t[0], -t[1]), default=(0, -1)
        )
        title = f"branch {n + 1} of {len(branches)}{' (active)' if n == 0 else ''}: "
        title += f"{len(branch)} events, head {short[branch[-1].id]}"
        if shared:
            title += f"; the first {shared} as in branch {earlier + 1}, then:"
        if n:
            console.print()
        console.print(title, style="bold" if n == 0 else None)
        for event in branch[shared:]:
            line = RichText(f"{short[event.id]} ", style="dim")
            for standard in service.deserialize_event(event.event_type, event.event_data).standard():
                line.append_text(event_text(standard))
            console.print(line)


def _common_prefix(a: Sequence[StoredEvent], b: Sequence[StoredEvent]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x.id != y.id:
            break
        n += 1
    return n


SHOW_COMMANDS: Final = {"show": _show}
