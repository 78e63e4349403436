"""The subcommands of ``sessions``: each takes the parsed arguments and the store folder, and returns an exit code."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Final

import msgspec
from rich import box
from rich.console import Console
from rich.progress import track as rich_track
from rich.table import Table

from eventlog import utcnow
from sessions import LocalSessionService, maintenance, transfer
from sessions.cli.chat import Chat, input_lines, stream_lines
from sessions.cli.render import event_text, make_console, time_ago
from sessions.errors import SessionNotFound, SessionsError
from sessions.events import deserialize_event
from sessions.models import VerifyReport

__all__ = ["COMMANDS", "EXIT_DAMAGED", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "STORE_ENV", "UsageError"]

STORE_ENV: Final = "SESSIONS_STORE"
EXIT_OK: Final = 0
EXIT_DAMAGED: Final = 1
EXIT_USAGE: Final = 2
EXIT_FAILED: Final = 3


class UsageError(Exception):
    """A mistake in how the command was called; printed as one line, exit code 2."""


def _how_to_run_me() -> str:
    """What the user types to run this command again: ``sessions`` if it is on PATH, else its path."""
    me = Path(sys.argv[0])
    if me.name == "__main__.py":
        return f"{Path(sys.executable).name} -m sessions"
    on_path = shutil.which("sessions")
    if on_path is not None and Path(on_path).resolve() == me.resolve():
        return "sessions"
    try:
        return str(me.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(me)


def _open(root: Path, *, create: bool = False) -> LocalSessionService:
    if root.exists() and not root.is_dir():
        raise UsageError(f"the store {root} is not a folder; pass --store PATH or set {STORE_ENV} to a folder")
    if not create and not (root / "sessions").is_dir():
        raise UsageError(
            f"no session store at {root} (nothing was saved there yet); run `sessions chat`, "
            f"or pass --store PATH or set {STORE_ENV}"
        )
    return LocalSessionService.open(root)


def _track(console: Console) -> maintenance.Track:
    def track(ids: Sequence[str], description: str) -> Iterable[str]:
        return rich_track(ids, description=description, console=console, transient=True, disable=len(ids) < 2)

    if console.is_terminal:
        return track
    return lambda ids, description: ids


# -- commands -----------------------------------------------------------------------------


def _chat(args: argparse.Namespace, root: Path) -> int:
    service = _open(root, create=True)
    console = make_console()
    scripted = args.script is not None or not sys.stdin.isatty()
    chat = Chat(
        service,
        console,
        directory=Path.cwd().resolve(),
        max_age_minutes=args.max_age,
        echo_input=scripted,
        command=_how_to_run_me(),
    )
    if args.script is not None:
        with open(args.script, encoding="utf-8") as script:
            chat.run(stream_lines(script))
        return EXIT_OK
    try:
        chat.run(stream_lines() if scripted else input_lines("you> "))
    except KeyboardInterrupt:
        # Every finished turn is already on disk; only the line being typed is dropped.
        console.print("\nInterrupted: every finished turn is saved.")
        chat.finish()
    return EXIT_OK


def _list(args: argparse.Namespace, root: Path) -> int:
    if not root.exists():
        if args.json:
            print("[]")
        else:
            print(f"No sessions yet: {root} does not exist. `sessions chat` starts one.")
        return EXIT_OK
    service = _open(root)
    sessions = service.list_sessions(include_archived=args.all)
    if args.dir is not None:
        wanted = str(args.dir.expanduser().resolve())
        sessions = [s for s in sessions if wanted in (s.directory, s.git_root)]
    if args.json:
        sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(sessions), indent=2) + b"\n")
        return EXIT_OK
    console = make_console()
    if not sessions:
        console.print(f"No sessions in {root}" + ("" if args.all else " (--all includes archived ones)"))
        return EXIT_OK
    table = Table(box=box.SIMPLE_HEAD if console.is_terminal else None, show_edge=False, pad_edge=False)
    for title in ("ID", "Directory", "Git root", "Last active", "Events", "Archived"):
        table.add_column(title, justify="right" if title == "Events" else "left", no_wrap=title == "ID")
    now = utcnow()
    for s in sessions:
        table.add_row(
            s.id,
            s.directory or "-",
            s.git_root or "-",
            time_ago(s.updated_at, now),
            str(s.event_count),
            time_ago(s.archived_at, now) if s.archived_at else "no",
        )
    console.print(table)
    return EXIT_OK


def _show(args: argparse.Namespace, root: Path) -> int:
    service = _open(root)
    session_id = maintenance.resolve_session_id(service, args.id)
    if args.raw or args.json:
        fmt = "jsonl" if args.raw else "json"
        sys.stdout.buffer.write(transfer.export_session(service, session_id, fmt))
        return EXIT_OK
    session = service.get_session(session_id)
    if session is None:
        raise SessionNotFound(f"no session {session_id} in {root}")
    console = make_console()
    console.print(f"Session {session.id}", style="bold")
    console.print(f"  directory:   {session.directory or '-'}")
    console.print(f"  git root:    {session.git_root or '-'}")
    console.print(f"  created:     {session.created_at:%Y-%m-%d %H:%M:%S} UTC ({time_ago(session.created_at)})")
    console.print(f"  last active: {session.updated_at:%Y-%m-%d %H:%M:%S} UTC ({time_ago(session.updated_at)})")
    if session.archived_at is not None:
        console.print(f"  archived:    {session.archived_at:%Y-%m-%d %H:%M:%S} UTC")
    if session.server_session_id:
        console.print(f"  server id:   {session.server_session_id}")
    console.print(f"  events:      {session.event_count}")
    console.print()
    for stored in service.load_events(session_id):
        console.print(event_text(deserialize_event(stored.event_type, stored.event_data)))
    return EXIT_OK


def _verify(args: argparse.Namespace, root: Path) -> int:
    service = _open(root)
    ids = service.session_ids() if args.all else [maintenance.resolve_session_id(service, args.id)]
    err = make_console(sys.stderr)
    reports: list[VerifyReport] = []
    unreadable: list[tuple[str, str]] = []
    for session_id in _track(err)(ids, "Verifying"):
        try:
            reports.append(service.verify(session_id))
        except SessionsError as exc:
            unreadable.append((session_id, str(exc)))
    damaged = sum(not r.ok for r in reports) + len(unreadable)
    if args.json:
        out = [_report_json(r) for r in reports] + [
            {"session_id": sid, "ok": False, "error": message} for sid, message in unreadable
        ]
        sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(out), indent=2) + b"\n")
        return EXIT_DAMAGED if damaged else EXIT_OK
    console = make_console()
    for report in reports:
        _print_report(console, report)
    for sid, message in unreadable:
        console.print(f"{sid}: UNREADABLE: {message}", style="bold red")
    if args.all:
        console.print(f"{len(ids)} session(s) checked, {damaged} damaged")
    if damaged:
        console.print(
            "Damaged lines are skipped when reading and never deleted. "
            "`sessions doctor` repairs torn tails; other damage stays for you to inspect.",
            style="dim",
        )
    return EXIT_DAMAGED if damaged else EXIT_OK


def _report_json(report: VerifyReport) -> dict[str, object]:
    return {
        "session_id": report.session_id,
        "ok": report.ok,
        "path": report.path,
        "size": report.size,
        "events": report.events,
        "heads": report.heads,
        "findings": report.findings,
        "unknown_types": report.unknown_types,
    }


def _print_report(console: Console, report: VerifyReport) -> None:
    state = "ok" if report.ok else "DAMAGED"
    console.print(
        f"{report.session_id}: {state}, {report.events} events, {report.size} bytes",
        style=None if report.ok else "bold red",
    )
    if report.forked:
        console.print(f"  forked: {len(report.heads)} branch tips; the active head is {report.heads[0]}")
    for finding in report.findings:
        console.print(f"  byte {finding.offset}: {finding.kind}: {finding.detail}", markup=False)


def _archive(args: argparse.Namespace, root: Path) -> int:
    service = _open(root)
    session_id = maintenance.resolve_session_id(service, args.id)
    if args.command == "archive":
        service.archive(session_id)
        print(f"archived {session_id}")
    else:
        service.unarchive(session_id)
        print(f"unarchived {session_id}")
    return EXIT_OK


def _export(args: argparse.Namespace, root: Path) -> int:
    service = _open(root)
    session_id = maintenance.resolve_session_id(service, args.id)
    data = transfer.export_session(service, session_id, args.format)
    if args.output is None:
        sys.stdout.buffer.write(data)
    else:
        with open(args.output, "xb") as f:  # never overwrite a file the user may still need
            f.write(data)
        print(f"exported {session_id} to {args.output}", file=sys.stderr)
    return EXIT_OK


def _import(args: argparse.Namespace, root: Path) -> int:
    if not args.file.is_file():
        raise UsageError(f"{args.file} is not a file; give a log written by `sessions export ID --format jsonl`")
    service = _open(root, create=True)
    session_id = transfer.import_session(service, args.file)
    print(f"imported session {session_id} into {root}")
    return EXIT_OK


def _reindex(args: argparse.Namespace, root: Path) -> int:
    service = _open(root)
    indexed, problems = maintenance.reindex(service, _track(make_console(sys.stderr)))
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    print(f"rebuilt {root / 'index.json'} from {indexed} session log(s)")
    return EXIT_OK


def _doctor(args: argparse.Namespace, root: Path) -> int:
    service = _open(root)
    console = make_console()
    steps = maintenance.doctor(service, dry_run=args.dry_run, track=_track(make_console(sys.stderr)))
    for name, changes in steps:
        console.print(f"{name}:", style="bold")
        for change in changes or ["nothing to do"]:
            console.print(f"  {change}", markup=False)
    if args.dry_run:
        console.print("dry run: nothing was changed", style="dim")
    return EXIT_OK


COMMANDS: Final[dict[str, Callable[[argparse.Namespace, Path], int]]] = {
    "chat": _chat,
    "list": _list,
    "show": _show,
    "verify": _verify,
    "archive": _archive,
    "unarchive": _archive,
    "export": _export,
    "import": _import,
    "reindex": _reindex,
    "doctor": _doctor,
}
