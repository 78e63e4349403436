"""Lossless import and export of other agents' session files: Claude Code, Codex and pi.

Each source line becomes one event holding the line byte for byte; the source's
tree becomes our parent links, its times our times, and :meth:`standard` on each
record maps it to standard events for views. Open the store with
``event_types=EVENT_TYPES`` so that these events are typed and known to ``verify``::

    store = LocalSessionService.open(root, event_types=importers.EVENT_TYPES)
    results = importers.import_claude_code(store, Path("~/.claude/projects/-home-me-proj").expanduser())
    text = importers.export_session(store, results[0].session_id, "claude-code")

Details: docs/IMPORT.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Final

from sessions.errors import ImportRefused, SessionsError
from sessions.importers import claude_code, codex, pi
from sessions.importers._source import ExportRefused, ImportedRecord, ImportResult, export_lines
from sessions.importers.claude_code import ClaudeCodeRecord
from sessions.importers.codex import CodexRecord
from sessions.importers.pi import PiRecord
from sessions.store import LocalSessionService

__all__ = [
    "AUTO",
    "EVENT_TYPES",
    "FORMATS",
    "ClaudeCodeRecord",
    "CodexRecord",
    "ExportRefused",
    "ImportResult",
    "ImportedRecord",
    "PiRecord",
    "detect",
    "export_session",
    "import_claude_code",
    "import_codex",
    "import_file",
    "import_pi",
    "source_files",
]

EVENT_TYPES: Final = (ClaudeCodeRecord, CodexRecord, PiRecord)
"""The record types to register: ``LocalSessionService.open(root, event_types=EVENT_TYPES)``."""

_TOOLS: Final[dict[str, tuple[ModuleType, type[ImportedRecord]]]] = {
    "claude-code": (claude_code, ClaudeCodeRecord),
    "codex": (codex, CodexRecord),
    "pi": (pi, PiRecord),
}
FORMATS: Final = tuple(_TOOLS)
"""The tools, by the name ``--from`` and ``export --format`` take."""
AUTO: Final = "auto"
"""For :func:`source_files` and :func:`import_file`: any of the tools, told apart by each file's first line."""


def _tool(fmt: str) -> tuple[ModuleType, type[ImportedRecord]]:
    try:
        return _TOOLS[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}") from None


def detect(path: Path) -> str | None:
    """The tool that wrote the session file at ``path``, from its first line, or None if none of ours did."""
    try:
        with open(path, "rb") as f:
            first = next((line for line in f if line.strip()), b"")
        value = json.loads(first)
    except (OSError, ValueError):
        return None
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if kind == "session_meta" or (isinstance(value.get("payload"), dict) and "timestamp" in value):
        return "codex"
    if kind == "session" and "cwd" in value:
        return "pi"
    if "sessionId" in value or kind in ("file-history-snapshot", "summary", "queue-operation"):
        return "claude-code"
    return None


def source_files(fmt: str, paths: Iterable[Path]) -> list[Path]:
    """The session files ``import_file`` takes for ``paths`` (files, or folders searched recursively), in order.

    :param fmt: a tool (see :data:`FORMATS`), or ``auto``: files of any of them.
    """
    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
        for module in [claude_code] if fmt == AUTO else [_tool(fmt)[0]]:
            found += [p for p in module.source_files(path) if p not in found]
    return found


def import_file(store: LocalSessionService, fmt: str, path: Path) -> list[ImportResult]:
    """Import one session file of tool ``fmt`` (``auto``: the tool :func:`detect` finds), and for Claude Code its
    sub-agents' files.

    A session the store holds already is left as it is (``status="exists"``): importing twice creates nothing new.

    :raises ImportRefused: if the file is not a session file of that tool (or is one of another tool's, or is
        empty), or cannot be read as one; nothing of it is written.
    """
    if fmt != AUTO:
        _tool(fmt)  # an unknown format is a ValueError before the file is read
    detected = detect(path)
    if fmt == AUTO:
        if detected is None:
            raise ImportRefused(f"{path} is not a session file of {', '.join(FORMATS)}; nothing was imported")
        fmt = detected
    elif detected is not None and detected != fmt:
        # Read as the wrong tool's, a file imports as garbage (no folder, no view, no export) and then makes
        # the right import a skip, since the store holds its session id already.
        raise ImportRefused(
            f"{path} looks like a {detected} session file, not a {fmt} one; nothing was imported. "
            f"Import it with --from {detected} or --from auto"
        )
    module, _ = _tool(fmt)
    try:
        results: list[ImportResult] = module.import_file(store, path)
    except SessionsError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, RecursionError) as exc:
        # A line shaped as no version of the tool writes it: one line naming the file, never a traceback.
        raise ImportRefused(
            f"{path} cannot be read as a {fmt} session file ({type(exc).__name__}: {exc}); "
            "nothing more of it was imported"
        ) from exc
    return results


def _import_all(store: LocalSessionService, fmt: str, path: Path) -> list[ImportResult]:
    return [result for file in source_files(fmt, [path]) for result in import_file(store, fmt, file)]


def import_claude_code(store: LocalSessionService, path: Path) -> list[ImportResult]:
    """Import a Claude Code session file with its sub-agents, or every session under a folder (recursively).

    :returns: one result per session (sub-agents included), each ``imported`` or ``exists``.
    :raises ImportRefused: at the first file that is not a session file (those before it are imported).
    """
    return _import_all(store, "claude-code", path)


def import_codex(store: LocalSessionService, path: Path) -> list[ImportResult]:
    """Import a Codex rollout file, or every one under a folder (recursively); see :func:`import_claude_code`."""
    return _import_all(store, "codex", path)


def import_pi(store: LocalSessionService, path: Path) -> list[ImportResult]:
    """Import a pi session file, or every one under a folder (recursively); see :func:`import_claude_code`."""
    return _import_all(store, "pi", path)


def export_session(store: LocalSessionService, session_id: str, fmt: str) -> bytes:
    """The imported session as the source file: line for line, in file order, each line's bytes as imported.

    :raises ExportRefused: if the session holds an event that was not imported from ``fmt`` (for example one
        appended after the import); nothing is returned.
    :raises SessionNotFound: if there is no such session.
    :raises ValueError: for an unknown format.
    """
    _, record = _tool(fmt)
    return export_lines(store, session_id, record)
