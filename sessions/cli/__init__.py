"""The ``sessions`` command: look after a session store, and a demo chat that uses it.

Here are the argument parser and :func:`main`; :mod:`sessions.cli.commands` holds the subcommands that read and
look after sessions, :mod:`sessions.cli.lifecycle` those that delete, restore, fork and rewind them,
:mod:`sessions.cli.render` how sessions are shown to people, and :mod:`sessions.cli.chat` the demo chat.
"""

from __future__ import annotations

import argparse
import errno
import importlib.metadata
import io
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final, NoReturn

import platformdirs

from sessions import importers, transfer
from sessions.cli.chat import DEFAULT_MAX_AGE_MINUTES
from sessions.cli.commands import (
    COMMANDS,
    EXIT_DAMAGED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PICK,
    STORE_ENV,
    UsageError,
)
from sessions.cli.interop import INTEROP_COMMANDS
from sessions.cli.lifecycle import LIFECYCLE_COMMANDS
from sessions.cli.listing import LISTING_COMMANDS, parse_since
from sessions.cli.search import SEARCH_COMMANDS
from sessions.cli.show import SHOW_COMMANDS
from sessions.errors import SessionNotFound, SessionsError, UnsafeStorePath
from sessions.maintenance import AmbiguousSessionId
from sessions.transfer import ImportRefused

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = [
    "ALL_COMMANDS",
    "EXIT_DAMAGED",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "default_store",
    "main",
]

APP_NAME: Final = "jsonl-sessions"

EPILOG: Final = f"""\
store:
  --store PATH, else ${STORE_ENV}, else the per-user data folder ({platformdirs.user_data_dir(APP_NAME)}).
  The store is a folder: sessions/*.jsonl are the data; index.jsonl, locks/ and trash/ are machine-local.

session ids:
  the short id `sessions list` prints (a unique start of the id's random last part: `sessions show 940e6b`),
  the whole id, or any unique prefix of it, as with git; the same for event ids (`sessions fork ID --at
  EVENT`, `sessions rewind ID --to EVENT`).

exit codes:
  0  success
  1  verify found damage (a line that cannot be read, or a torn tail)
  2  a usage mistake: unknown or ambiguous id, bad flag, unreadable store or file
  3  the operation failed: the session was busy, or the disk refused a write
     (a read-only store, a full disk), or the chat could not save its last turn
  130  interrupted with Ctrl-C (every finished chat turn is saved)
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


def _version() -> str:
    try:
        return importlib.metadata.version(APP_NAME)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


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


def _count_of(things: str) -> Callable[[str], int]:
    """The argument type of a count of ``things`` (1 or more)."""

    def count(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of {things} (1 or more)")
        return value

    return count


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
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
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

    chat = command(
        "chat",
        "a demo chat that resumes this directory's last session (offline, no model)",
        "Without options it continues the newest session of this folder (or its git root) that was active in\n"
        "the last --max-age minutes, else starts a new one and says if an older one exists. A session open in\n"
        "another chat is never continued by a second one: that one starts its own and says why. Exits 3 if the\n"
        "last turn could not be saved, 130 on Ctrl-C (every finished turn is saved).",
    )
    chat.add_argument(
        "--max-age",
        type=_minutes,
        metavar="MINUTES",
        default=DEFAULT_MAX_AGE_MINUTES,
        help="resume a session only if it was active this recently (default: %(default)g)",
    )
    chat.add_argument("--script", type=Path, metavar="FILE", help="read the chat from FILE instead of the terminal")
    which_session = chat.add_mutually_exclusive_group()
    which_session.add_argument(
        "-c",
        "--continue",
        dest="continue_latest",
        action="store_true",
        help="continue this folder's latest session, however long ago it was active",
    )
    which_session.add_argument(
        "-r",
        "--resume",
        nargs="?",
        const=PICK,
        metavar="ID",
        help="continue session ID (any folder); without ID, pick one from a list (on a terminal)",
    )

    ls = command(
        "list",
        "list sessions, most recently active first",
        "Each session shows its short id (accepted wherever an id is), its title (the first thing the user\n"
        "said, or the title the application set as metadata `title`), when it was last active, its events and\n"
        "its folder. The table fits the terminal; an id an application chose that is too long for it shows as\n"
        "a prefix (or its start and end) that names it alone, around …, accepted as it is shown. --json\n"
        "prints everything, full ids included.",
    )
    ls.add_argument("--all", action="store_true", help="include archived sessions")
    ls.add_argument("--dir", type=Path, metavar="DIR", help="only sessions whose directory or git root is DIR")
    ls.add_argument("-r", "--recursive", action="store_true", help="with --dir: also sessions in folders inside DIR")
    ls.add_argument(
        "--since",
        type=parse_since,
        metavar="WHEN",
        help="only sessions active since WHEN: a duration (30m, 2h, 3d, 1w) or a date (2026-01-31)",
    )
    ls.add_argument(
        "-n", "--limit", type=_count_of("sessions"), metavar="N", help="at most N sessions (the most recent)"
    )
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")

    show = command(
        "show",
        "show a session's conversation",
        "On a terminal the conversation goes through $PAGER (else `less`), printed as it is read. --json is\n"
        "the session, its metadata as JSON values, and its events with the field names of the log's own lines\n"
        "(id, parent, inv, type, ts, data), which --raw prints exactly as stored.",
    )
    show.add_argument("id", help="session id or unique prefix")
    how = show.add_mutually_exclusive_group()
    how.add_argument("--json", action="store_true", help="print the session and its events as JSON")
    how.add_argument("--raw", action="store_true", help="print the log lines exactly as stored")
    part = show.add_mutually_exclusive_group()
    part.add_argument(
        "--tail",
        type=_count_of("events"),
        metavar="N",
        help="only the last N events of the active branch (a straight log is read from its end, not whole)",
    )
    part.add_argument(
        "--branches",
        action="store_true",
        help="every branch of the session, the active one first, with event ids (for fork --at and rewind --to)",
    )
    show.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="after the conversation, print each event another process adds, until Ctrl-C",
    )
    show.add_argument(
        "--no-pager", action="store_true", help="print straight to the terminal (default: $PAGER, else less)"
    )

    search = command(
        "search",
        "find events whose content matches a regular expression, across the store",
        "PATTERN is a Python regular expression, matched against the text of each event's content (what was\n"
        "said, a tool call's name and input as compact JSON, a tool's output, reasoning, a compaction's summary),\n"
        "not ids, folders or the JSON around it, on every branch of every session, archived ones too. A session\n"
        "imported from another tool is searched as the standard events `show` prints.\n"
        "Each matching event prints on one line: session (short id), event, type and the text around the match.\n"
        "Exits 0 if something matched, 1 if nothing did (as grep does), 2 for a bad pattern or a missing store.",
    )
    search.add_argument("pattern", metavar="PATTERN", help="a regular expression (Python syntax)")
    search.add_argument("-i", "--ignore-case", action="store_true", help="match letters in either case")
    search.add_argument(
        "--type",
        action="append",
        metavar="TYPE",
        help="only events of TYPE, as `show` names them (an imported line counts as each event it holds): "
        "user_message, text, tool_call, tool_result, reasoning... (may be repeated)",
    )
    search.add_argument("--dir", type=Path, metavar="DIR", help="only sessions whose directory or git root is DIR")
    search.add_argument("-r", "--recursive", action="store_true", help="with --dir: also folders inside DIR")
    search.add_argument(
        "--since", type=parse_since, metavar="WHEN", help="only events since WHEN: 30m, 2h, 3d, 1w or a date"
    )
    search.add_argument("--json", action="store_true", help="print the matches as JSON")

    verify = command("verify", "check logs: chain, duplicates, unknown types, damaged lines (with byte offsets)")
    which = verify.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", help="session id or unique prefix")
    which.add_argument("--all", action="store_true", help="check every session")
    verify.add_argument("--json", action="store_true", help="print the reports as JSON")
    verify.add_argument(
        "-q", "--quiet", action="store_true", help="print only the sessions with problems (the exit code says the rest)"
    )

    for name, text in (("archive", "archive a session (nothing is deleted)"), ("unarchive", "unarchive a session")):
        command(name, text).add_argument("id", help="session id or unique prefix")

    export = command("export", "write a session out: jsonl (the log itself, for import), json or markdown")
    export.add_argument("id", help="session id or unique prefix")
    export.add_argument(
        "--format",
        choices=(*transfer.EXPORT_FORMATS, *importers.FORMATS),
        default="jsonl",
        help="default: jsonl; claude-code, codex, pi: a session imported with --from, as the tool's own file",
    )
    export.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE instead of standard output (`-`: standard output)"
    )
    export.add_argument("--force", action="store_true", help="overwrite FILE if it exists (else: refused, exit 2)")

    imp = command(
        "import",
        "add a session from a file written by `export --format jsonl`",
        "The whole file is checked before anything is written. If the store already holds the session (an older\n"
        "or newer copy of it), the two are merged as a sync merge does: every event of both is kept, nothing is\n"
        "overwritten, and a copy of the file is kept in STORE/trash/.",
    )
    imp.add_argument("file", help="the exported log (`-`: read it from standard input)")
    imp.add_argument("more", nargs="*", metavar="PATH", help="with --from: more session files or folders")
    imp.add_argument(
        "--from",
        dest="source",
        choices=(*importers.FORMATS, importers.AUTO),
        help="import another tool's session files instead: FILE and each PATH a file or a folder (searched"
        " recursively; `auto`: each file's tool told by its first line); sessions already in the store are"
        " skipped (docs/IMPORT.md)",
    )

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
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_USAGE
        warnings.showwarning = _warn_one_line
        root = Path(args.store).expanduser() if getattr(args, "store", None) else default_store()
        if args.command in WRITE_COMMANDS:
            _outlive_the_reader()
        code = ALL_COMMANDS[args.command](args, root)
        sys.stdout.flush()  # inside the try: a reader that left shows up here, as a BrokenPipeError
        return code
    except (UsageError, SessionNotFound, AmbiguousSessionId, ImportRefused, UnsafeStorePath) as exc:
        return _fail(EXIT_USAGE, str(exc))
    except SessionsError as exc:
        return _fail(EXIT_FAILED, exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc))
    except BrokenPipeError:
        # The reader of a command that only reads went away (`sessions verify --all | head -2`): what it read was
        # what it wanted, so stop quietly with success, as `grep ... | head` does; stdout goes to /dev/null so the
        # interpreter's final flush does not complain. (A command that writes never gets here: see WRITE_COMMANDS.)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        # A disk that refuses a write fails the operation (3); a store or file that cannot be read is a usage
        # mistake (2).
        code = EXIT_FAILED if exc.errno in _WRITE_REFUSED else EXIT_USAGE
        return _fail(code, f"{where}{exc.strerror or exc}")
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


ALL_COMMANDS: Final = (
    COMMANDS | LISTING_COMMANDS | SHOW_COMMANDS | SEARCH_COMMANDS | LIFECYCLE_COMMANDS | INTEROP_COMMANDS
)
"""Every subcommand by name: each takes the parsed arguments and the store folder and returns an exit code."""

_WRITE_REFUSED: Final = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT})

WRITE_COMMANDS: Final = frozenset(
    {"chat", "archive", "unarchive", "import", "export", "reindex", "doctor", "rm", "restore", "trash", "gc"}
    | {"fork", "rewind"}
)
"""Commands that change the store (or write a file): a reader of their output that goes away must not stop them
half done (`sessions import --from auto DIR | head -1` still imports every session, and its exit code says how
that went); what they would have printed goes nowhere."""


class _ReaderGone(io.RawIOBase):
    """Standard output that, once its reader has gone (a closed pipe), takes every write and drops it."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self.gone = False

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def write(self, data: ReadableBuffer) -> int:
        size = memoryview(data).nbytes
        if self.gone:
            return size
        try:
            return os.write(self._fd, data)
        except BrokenPipeError:
            self.gone = True
            return size

    def close(self) -> None:
        super().close()  # never closes the descriptor: it is the process's standard output


def _outlive_the_reader() -> None:
    """Make ``sys.stdout`` one that a closed pipe does not stop (see :data:`WRITE_COMMANDS`)."""
    stdout = sys.stdout
    if not isinstance(stdout, io.TextIOWrapper) or stdout.isatty():
        return  # a terminal does not go away mid-write; a stdout already replaced (a test harness) is left alone
    stdout.flush()
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(_ReaderGone(stdout.fileno())),
        encoding=stdout.encoding,
        errors=stdout.errors,
        line_buffering=stdout.line_buffering,
        write_through=stdout.write_through,
    )


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
