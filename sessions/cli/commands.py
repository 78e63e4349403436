"""The subcommands of ``sessions``: each takes the parsed arguments and the store folder, and returns an exit code."""

from __future__ import annotations

import argparse
import errno
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Final

import msgspec
from rich.console import Console
from rich.progress import track as rich_track

from sessions import LocalSessionService, importers, maintenance, transfer
from sessions.cli.chat import Chat, input_lines, stream_lines
from sessions.cli.render import make_console
from sessions.errors import SessionsError
from sessions.models import VerifyReport

__all__ = [
    "COMMANDS",
    "EXIT_DAMAGED",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "PICK",
    "STORE_ENV",
    "UsageError",
    "open_store",
    "print_json",
    "track_progress",
]

STORE_ENV: Final = "SESSIONS_STORE"
EXIT_OK: Final = 0
EXIT_DAMAGED: Final = 1
EXIT_USAGE: Final = 2
EXIT_FAILED: Final = 3
EXIT_INTERRUPTED: Final = 130
"""Ctrl-C, as shells report a process ended by SIGINT (128 + 2)."""


PICK: Final = "\0pick"
"""``--resume`` given without an id: pick one from a list."""


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


def open_store(root: Path, *, create: bool = False) -> LocalSessionService:
    """The store at ``root``; a missing store (unless ``create``) or a path that is not a folder is a UsageError."""
    if root.exists() and not root.is_dir():
        raise UsageError(f"the store {root} is not a folder; pass --store PATH or set {STORE_ENV} to a folder")
    if not create and not (root / "sessions").is_dir():
        raise UsageError(
            f"no session store at {root} (nothing was saved there yet); run `sessions chat`, "
            f"or pass --store PATH or set {STORE_ENV}"
        )
    try:
        return LocalSessionService.open(root, event_types=importers.EVENT_TYPES)
    except OSError as exc:
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM) or create:
            raise
        # A read-only store (a backup, a snapshot) without locks/ (which a sync or backup leaves out): reading
        # needs no lock, so it is opened as it is, and only a write fails (exit code 3).
        return LocalSessionService(root, event_types=importers.EVENT_TYPES)


def track_progress(console: Console) -> maintenance.Track:
    def track(ids: Sequence[str], description: str) -> Iterable[str]:
        return rich_track(ids, description=description, console=console, transient=True, disable=len(ids) < 2)

    if console.is_terminal:
        return track
    return lambda ids, description: ids


# -- commands -----------------------------------------------------------------------------


def _chat(args: argparse.Namespace, root: Path) -> int:
    service = open_store(root, create=True)
    console = make_console()
    scripted = args.script is not None or not sys.stdin.isatty()
    resume_id: str | None = None
    if args.resume == PICK:
        if scripted or not sys.stdout.isatty():
            raise UsageError(
                "--resume without an id shows a list to pick from, which needs a terminal; "
                "give the id (`sessions list` shows them), or use --continue for this folder's latest session"
            )
        from sessions.cli.picker import pick_session

        resume_id = pick_session(service, console)
        if resume_id is None:
            console.print("No session chosen; nothing was started.")
            return EXIT_OK
    elif args.resume is not None:
        resume_id = maintenance.resolve_session_id(service, args.resume)
    chat = Chat(
        service,
        console,
        directory=Path.cwd().resolve(),
        max_age_minutes=args.max_age,
        echo_input=scripted,
        command=_how_to_run_me(),
        resume_id=resume_id,
        continue_latest=args.continue_latest,
    )
    if args.script is not None:
        with open(args.script, encoding="utf-8") as script:
            return EXIT_OK if chat.run(stream_lines(script)) else EXIT_FAILED
    try:
        saved = chat.run(stream_lines() if scripted else input_lines("you> "))
    except KeyboardInterrupt:
        # Every finished turn is already on disk; only the line being typed is dropped.
        console.print("\nInterrupted: every finished turn is saved.")
        chat.finish()
        return EXIT_INTERRUPTED
    return EXIT_OK if saved else EXIT_FAILED


def print_json(value: object) -> None:
    """``value`` as indented JSON on stdout, as every ``--json`` prints."""
    sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(value), indent=2) + b"\n")


def _verify(args: argparse.Namespace, root: Path) -> int:
    service = open_store(root)
    ids = service.session_ids() if args.all else [maintenance.resolve_session_id(service, args.id)]
    err = make_console(sys.stderr)
    reports: list[VerifyReport] = []
    unreadable: list[tuple[str, str]] = []
    for session_id in track_progress(err)(ids, "Verifying"):
        try:
            reports.append(service.verify(session_id))
        except SessionsError as exc:
            unreadable.append((session_id, str(exc)))
    damaged = sum(not r.ok for r in reports) + len(unreadable)
    if args.json:
        shown = [r for r in reports if not (args.quiet and r.ok)]  # --quiet: only the damaged ones
        out = [_report_json(r) for r in shown] + [
            {"session_id": sid, "ok": False, "error": message} for sid, message in unreadable
        ]
        print_json(out)
        return EXIT_DAMAGED if damaged else EXIT_OK
    console = make_console()
    for report in reports:
        if not (args.quiet and report.ok):
            _print_report(console, report)
    for sid, message in unreadable:
        console.print(f"{sid}: UNREADABLE: {message}", style="bold red")
    if args.all and not args.quiet:
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
    listed = " ".join(f.detail for f in report.findings if f.kind == "unknown_type")
    for event_type, count in sorted(report.unknown_types.items()):
        if repr(event_type) not in listed:  # a newer version wrote them: kept as they are, not damage
            console.print(
                f"  unknown_type: event type {event_type!r} is unknown to this version ({count} event(s), kept as is)",
                markup=False,
            )


def _archive(args: argparse.Namespace, root: Path) -> int:
    service = open_store(root)
    session_id = maintenance.resolve_session_id(service, args.id)
    stored = service.get_session(session_id)
    archived = stored is not None and stored.archived_at is not None
    # Nothing is written when there is nothing to change: archived_at keeps its first time, which gc counts from.
    if args.command == "archive":
        if archived:
            print(f"{session_id} is already archived; nothing changed")
        else:
            service.archive(session_id)
            print(f"archived {session_id}")
    elif not archived:
        print(f"{session_id} is not archived; nothing changed")
    else:
        service.unarchive(session_id)
        print(f"unarchived {session_id}")
    return EXIT_OK


def _export(args: argparse.Namespace, root: Path) -> int:
    service = open_store(root)
    session_id = maintenance.resolve_session_id(service, args.id)
    data = transfer.export_session(service, session_id, args.format)
    if args.output is None or args.output == "-":
        sys.stdout.buffer.write(data)
        return EXIT_OK
    output = Path(args.output)
    if output.is_dir():
        raise UsageError(f"{output} is a folder; give a file name to export to")
    # Without --force a file that exists is never overwritten: the user may still need it.
    try:
        with open(output, "wb" if args.force else "xb") as f:
            f.write(data)
    except FileExistsError:
        raise UsageError(f"{output} exists; nothing was written (--force overwrites it)") from None
    print(f"exported {session_id} to {output}", file=sys.stderr)
    return EXIT_OK


def _import(args: argparse.Namespace, root: Path) -> int:
    if args.file == "-":
        data, name = sys.stdin.buffer.read(), "standard input"
    else:
        path = Path(args.file)
        if not path.is_file():
            raise UsageError(f"{path} is not a file; give a log written by `sessions export ID --format jsonl`")
        data, name = path.read_bytes(), str(path)
    service = open_store(root, create=True)
    imported = transfer.import_log(service, data, name)
    if not imported.merged:
        print(f"imported session {imported.session_id} into {root}")
    elif imported.added_events:
        print(f"merged {name} into session {imported.session_id}: {imported.added_events} new event(s)")
    else:
        print(f"session {imported.session_id} already holds every event of {name}; merged its facts, if any")
    return EXIT_OK


def _reindex(args: argparse.Namespace, root: Path) -> int:
    service = open_store(root)
    indexed, problems = maintenance.reindex(service, track_progress(make_console(sys.stderr)))
    for problem in problems:
        print(f"skipped {problem}", file=sys.stderr)
    print(f"rebuilt {root / 'index.jsonl'} from {indexed} session log(s)")
    return EXIT_OK


def _doctor(args: argparse.Namespace, root: Path) -> int:
    service = open_store(root)
    console = make_console()
    steps = maintenance.doctor(service, dry_run=args.dry_run, track=track_progress(make_console(sys.stderr)))
    for name, changes in steps:
        console.print(f"{name}:", style="bold")
        for change in changes or ["nothing to do"]:
            console.print(f"  {change}", markup=False)
    if args.dry_run:
        console.print("dry run: nothing was changed", style="dim")
    return EXIT_OK


COMMANDS: Final[dict[str, Callable[[argparse.Namespace, Path], int]]] = {
    "chat": _chat,
    "verify": _verify,
    "archive": _archive,
    "unarchive": _archive,
    "export": _export,
    "import": _import,
    "reindex": _reindex,
    "doctor": _doctor,
}
