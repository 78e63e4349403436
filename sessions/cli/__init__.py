"""The ``sessions`` command: look after a session store, and a demo chat that uses it.

Here are the argument parser and :func:`main`; :mod:`sessions.cli.commands` holds the subcommands,
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
from sessions.errors import SessionNotFound, SessionsError, UnsafeStorePath
from sessions.maintenance import AmbiguousSessionId
from sessions.transfer import ImportRefused

__all__ = ["EXIT_DAMAGED", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "default_store", "main"]

APP_NAME: Final = "jsonl-sessions"

EPILOG: Final = f"""\
store:
  --store PATH, else ${STORE_ENV}, else the per-user data folder ({platformdirs.user_data_dir(APP_NAME)}).
  The store is a folder: sessions/*.jsonl are the data; index.json, locks/ and trash/ are machine-local.

session ids:
  any unique prefix of an id works, as with git (`sessions show 0193f2`).

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

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=help_text, description=help_text, epilog=EPILOG, formatter_class=formatter, parents=[common]
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

    command("reindex", "rebuild index.json from the logs")
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
        return COMMANDS[args.command](args, root)
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
