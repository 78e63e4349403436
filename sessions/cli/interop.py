"""``sessions import --from claude-code|codex|pi|auto PATH...``, ``sessions export ID --format claude-code|codex|pi``.

Other tools' session files in and out of a store (see :mod:`sessions.importers` and docs/IMPORT.md). The two
commands wrap the store's own ``import`` and ``export``, which handle everything else.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Final

from sessions import importers, maintenance
from sessions.cli.commands import COMMANDS, EXIT_OK, EXIT_USAGE, UsageError, open_store, track_progress
from sessions.cli.render import make_console
from sessions.errors import ImportRefused

__all__ = ["INTEROP_COMMANDS"]

Command = Callable[[argparse.Namespace, Path], int]


def _import_from(args: argparse.Namespace, root: Path) -> int:
    fmt: str = args.source
    paths = [Path(p) for p in [args.file, *args.more]]
    if Path("-") in paths:
        raise UsageError("--from reads session files or folders, not standard input; give their paths")
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path} does not exist; give a {fmt} session file or a folder of them")
    files = importers.source_files(fmt, paths)
    if not files:
        raise UsageError(f"no .jsonl files in {', '.join(map(str, paths))}; give a {fmt} session file or folder")
    service = open_store(root, create=True)
    err = make_console(sys.stderr)
    by_name = {str(file): file for file in files}
    imported = present = 0
    refused: list[str] = []
    for name in track_progress(err)(list(by_name), f"Importing {fmt} sessions"):
        try:
            results = importers.import_file(service, fmt, by_name[name])
        except ImportRefused as exc:
            refused.append(str(exc))
            continue
        for result in results:
            if result.status == "imported":
                imported += 1
                print(f"imported {result.session_id} ({result.events} lines) from {result.path}")
            else:
                present += 1
                print(f"skipped {result.session_id}: already in the store (from {result.path})")
    for reason in refused:
        print(f"sessions: error: {reason}", file=sys.stderr)
    print(f"{imported} imported, {present} already in the store, {len(refused)} refused", file=sys.stderr)
    return EXIT_USAGE if refused else EXIT_OK


def _export_as(args: argparse.Namespace, root: Path) -> int:
    service = open_store(root)
    session_id = maintenance.resolve_session_id(service, args.id)
    try:
        data = importers.export_session(service, session_id, args.format)
    except importers.ExportRefused as exc:
        raise UsageError(str(exc)) from None
    if args.output is None or args.output == "-":
        sys.stdout.buffer.write(data)
        return EXIT_OK
    output = Path(args.output)
    if output.is_dir():
        raise UsageError(f"{output} is a folder; give a file name to export to")
    try:  # as `export` does: a file that exists is overwritten only with --force
        with open(output, "wb" if args.force else "xb") as f:
            f.write(data)
    except FileExistsError:
        raise UsageError(f"{output} exists; nothing was written (--force overwrites it)") from None
    print(f"exported {session_id} to {output}", file=sys.stderr)
    return EXIT_OK


def _import(args: argparse.Namespace, root: Path) -> int:
    if getattr(args, "source", None) is not None:
        return _import_from(args, root)
    if getattr(args, "more", None):
        raise UsageError("several files are imported with --from claude-code|codex|pi; a jsonl log one at a time")
    try:
        return COMMANDS["import"](args, root)
    except ImportRefused as exc:
        tool = importers.detect(Path(args.file)) if args.file != "-" else None
        if tool is None:
            raise
        raise ImportRefused(
            f"{exc}. It looks like a {tool} session file: import it with --from {tool} or --from auto"
        ) from exc


def _export(args: argparse.Namespace, root: Path) -> int:
    if args.format in importers.FORMATS:
        return _export_as(args, root)
    return COMMANDS["export"](args, root)


INTEROP_COMMANDS: Final[dict[str, Command]] = {"import": _import, "export": _export}
"""``import`` and ``export`` with the other tools' formats; everything else goes to the store's own commands."""
