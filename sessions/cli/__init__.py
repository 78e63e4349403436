"""The ``sessions`` command: look after a session store, and a demo chat that uses it.

Here are the argument parser and :func:`main`; :mod:`sessions.cli.commands` holds the subcommands that read and
look after sessions, :mod:`sessions.cli.lifecycle` those that delete, restore, fork and rewind them,
:mod:`sessions.cli.render` how sessions are shown to people, and :mod:`sessions.cli.chat` the demo chat.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Final, NoReturn

import platformdirs

from sessions import transfer
from sessions.cli.chat import DEFAULT_MAX_AGE_MINUTES
from sessions.cli.commands import COMMANDS, EXIT_DAMAGED, EXIT_FAILED, EXIT_OK, EXIT_USAGE, STORE_ENV, UsageError
from sessions.cli.lifecycle import LIFECYCLE_COMMANDS
from sessions.errors import SessionNotFound, SessionsError, UnsafeStorePath
from sessions.maintenance import AmbiguousSessionId
from sessions.transfer import ImportRefused

__all__ = ["EXIT_DAMAGED", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "default_store", "main"]

APP_NAME: Final = "jsonl-sessions"

EPILOG: Final = f"""\
store:
  --store PATH, else ${STORE_ENV}, else the per-user data folder ({platformdirs.user_data_dir(APP_NAME)}).
  The store is a folder: sessions/*.jsonl are the data; index.jsonl, locks/ and trash/ are machine-local.

session ids:
  any unique prefix of an id works, as with git (`sessions show 0193f2`); so does it for event ids
  (`sessions fork ID --at EVENT`, `sessions rewind ID --to EVENT`).

exit codes:
  0  success
  1  verify found damage (a line that cannot be read, or a torn tail)
  2  a usage mistake: unknown or ambiguous id, bad flag, unreadable store or file
  3  the operation failed: the session was busy, or the disk refused a write
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: the mistake is what the user needs to see.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def default_store() -> Path:
    """The store used without ``--store``: ``$SESSIONS_STORE``, else the per-user data folder."""
    env = os.environ.get(STORE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME))


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of minutes") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of minutes (0 or more)")
    return value


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not value >= 0 or value == float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days (0 or more)")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of events (1 or more)")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one subcommand per operation."""
    formatter = argparse.RawDescriptionHelpFormatter
    common = _Parser(add_help=False)
    common.add_argument(
        "--store",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help=f"the session store folder (default: ${STORE_ENV}, else the per-user data folder)",
    )
    parser = _Parser(
        prog="sessions",
        description="Chat and agent sessions kept as append-only JSON-lines logs, without a database.",
        epilog=EPILOG,
        formatter_class=formatter,
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help_text: str, description: str | None = None) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help_text,
            description=help_text if description is None else f"{help_text}.\n\n{description}",
            epilog=EPILOG,
            formatter_class=formatter,
            parents=[common],
        )

    chat = command("chat", "a demo chat that resumes this directory's last session (offline, no model)")
    chat.add_argument(
        "--max-age",
        type=_minutes,
        metavar="MINUTES",
        default=DEFAULT_MAX_AGE_MINUTES,
        help="resume a session only if it was active this recently (default: %(default)g)",
    )
    chat.add_argument("--script", type=Path, metavar="FILE", help="read the chat from FILE instead of the terminal")

    ls = command("list", "list sessions, most recently active first")
    ls.add_argument("--all", action="store_true", help="include archived sessions")
    ls.add_argument("--dir", type=Path, metavar="DIR", help="only sessions whose directory or git root is DIR")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")

    show = command("show", "show a session's conversation")
    show.add_argument("id", help="session id or unique prefix")
    how = show.add_mutually_exclusive_group()
    how.add_argument("--json", action="store_true", help="print the session and its events as JSON")
    how.add_argument("--raw", action="store_true", help="print the log lines exactly as stored")
    part = show.add_mutually_exclusive_group()
    part.add_argument(
        "--tail",
        type=_count,
        metavar="N",
        help="only the last N events of the active branch (a straight log is read from its end, not whole)",
    )
    part.add_argument(
        "--branches",
        action="store_true",
        help="every branch of the session, the active one first, with event ids (for fork --at and rewind --to)",
    )

    verify = command("verify", "check logs: chain, duplicates, unknown types, damaged lines (with byte offsets)")
    which = verify.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", help="session id or unique prefix")
    which.add_argument("--all", action="store_true", help="check every session")
    verify.add_argument("--json", action="store_true", help="print the reports as JSON")

    for name, text in (("archive", "archive a session (nothing is deleted)"), ("unarchive", "unarchive a session")):
        command(name, text).add_argument("id", help="session id or unique prefix")

    export = command("export", "write a session out: jsonl (the log itself, for import), json or markdown")
    export.add_argument("id", help="session id or unique prefix")
    export.add_argument("--format", choices=transfer.EXPORT_FORMATS, default="jsonl", help="default: jsonl")
    export.add_argument("-o", "--output", type=Path, metavar="FILE", help="write to FILE instead of stdout")

    imp = command("import", "add a session from a file written by `export --format jsonl`")
    imp.add_argument("file", type=Path, help="the exported log")

    rm = command(
        "rm",
        "delete sessions: move their logs to the trash",
        "Each log, and any sync conflict copies beside it, moves whole to STORE/trash/deleted/, under the\n"
        "session's lock. `sessions restore ID` brings a session back; only `sessions trash --purge` removes\n"
        "it for good. An unknown id is reported (exit code 2) and the other sessions are deleted all the same.",
    )
    rm.add_argument("ids", nargs="+", metavar="ID", help="session id or unique prefix (several may be given)")

    restore = command(
        "restore",
        "bring a deleted session back from the trash",
        "The most recently deleted log of the session goes back to STORE/sessions/, whole. It never replaces\n"
        "a session that is in the store (exit code 3 if there is one with that id).",
    )
    restore.add_argument("id", help="id or unique prefix of a deleted session (`sessions trash` lists them)")

    trash = command(
        "trash",
        "list the trash, or empty it of what is older than DAYS",
        "Lists the deleted sessions in STORE/trash/deleted/: id, when deleted, size. With --purge --older-than\n"
        "DAYS, removes for good every file that has been in the trash longer than DAYS: deleted sessions, and\n"
        "the torn tails and merged conflict copies that `doctor` and the library keep there.",
    )
    trash.add_argument("--purge", action="store_true", help="remove old files for good (needs --older-than)")
    trash.add_argument(
        "--older-than", type=_days, metavar="DAYS", help="with --purge: what has been in the trash longer (0: all)"
    )
    trash.add_argument("--json", action="store_true", help="print JSON instead of a table")

    gc = command(
        "gc",
        "move sessions archived more than DAYS ago to the trash",
        "Every archived session whose archive date is more than DAYS ago is deleted as `sessions rm` does\n"
        "(into the trash, from which `sessions restore` brings it back). --dry-run only lists them.",
    )
    gc.add_argument(
        "--archived-older-than", type=_days, metavar="DAYS", required=True, help="archived more than DAYS ago"
    )
    gc.add_argument("--dry-run", action="store_true", help="only list the sessions that would be moved")
    gc.add_argument("--json", action="store_true", help="print the sessions as JSON")

    fork = command(
        "fork",
        "start a new session from a copy of another's conversation",
        "The new session holds the active branch of ID up to its head, or up to --at EVENT, and the same\n"
        "directory and git root. It records where it came from (forked_from, fork_event_id) and does not\n"
        "depend on the original, which is not changed. Prints the new session's id on the first line.",
    )
    fork.add_argument("id", help="session id or unique prefix")
    fork.add_argument("--at", metavar="EVENT", help="the event to fork at: id or unique prefix (default: the head)")
    fork.add_argument("--json", action="store_true", help="print the new session as JSON")

    rewind = command(
        "rewind",
        "go back to an earlier event: the next message continues from it",
        "Makes EVENT (on any branch) the session's head. Nothing is deleted: the events after it stay in the\n"
        "log as a branch, which `sessions show ID --branches` shows (with the event ids).",
    )
    rewind.add_argument("id", help="session id or unique prefix")
    rewind.add_argument("--to", metavar="EVENT", required=True, help="the event to go back to: id or unique prefix")

    command("reindex", "rebuild index.jsonl from the logs")
    doctor = command("doctor", "merge sync conflict copies, repair torn tails, rebuild the index")
    doctor.add_argument("--dry-run", action="store_true", help="report what would change, change nothing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sessions`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    warnings.showwarning = _warn_one_line
    root = Path(args.store).expanduser() if getattr(args, "store", None) else default_store()
    try:
        return (COMMANDS | LIFECYCLE_COMMANDS)[args.command](args, root)
    except (UsageError, SessionNotFound, AmbiguousSessionId, ImportRefused, UnsafeStorePath) as exc:
        return _fail(EXIT_USAGE, str(exc))
    except SessionsError as exc:
        return _fail(EXIT_FAILED, str(exc))
    except BrokenPipeError:
        # The reader went away (`sessions show ID --raw | head`); as rich does, stop quietly, and point stdout
        # at /dev/null so the interpreter's final flush does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(EXIT_USAGE, f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt:
        return 130


def _fail(code: int, message: str) -> int:
    print(f"sessions: error: {message}", file=sys.stderr)
    return code


def _warn_one_line(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: object = None,
) -> None:
    print(f"sessions: warning: {message}", file=sys.stderr)
