"""What the three importers share: a source file's lines as events, their tree, the session, and export.

Each line of a source file becomes one event holding the line (a tool's
:class:`ImportedRecord` subclass, the line's JSON object kept as raw bytes), or, for a
compaction line, a standard :class:`~sessions.Compaction` carrying the line in its
``meta`` under the record type's tag, so that ``from_compaction`` resumes find it.
Export writes those lines back, in file order: the same JSON values, each line byte for byte unless it held
non-ASCII characters, which the log keeps as ``\\u`` escapes. Layout and rules: docs/IMPORT.md.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final

import msgspec

from eventlog import new_id
from sessions.errors import ImportRefused, InvalidSessionId, SessionExists, SessionsError
from sessions.events import Compaction, EventBase, UserMessage
from sessions.models import StoredEvent
from sessions.protocol import check_session_id
from sessions.store import LocalSessionService
from sessions.titles import TITLE_KEY, one_line

__all__ = [
    "ExportRefused",
    "ImportResult",
    "ImportedRecord",
    "Source",
    "SourceLine",
    "export_lines",
    "parse_time",
    "read_lines",
    "save",
    "session_id_for",
]

_any: Final = msgspec.json.Decoder(Any)


class ExportRefused(SessionsError, ValueError):
    """The session holds events that the asked format has no line for; nothing was written."""


class ImportedRecord(EventBase, frozen=True):
    """One line of another tool's session file, its JSON object kept as raw bytes in ``line`` (never parsed on
    resume).

    Subclasses name their tag in ``TYPE`` and map the line to standard events in :meth:`standard`.
    """

    TYPE: ClassVar[str]
    FORMAT: ClassVar[str]
    """The ``--from`` / ``--format`` name of the tool (``claude-code``, ``codex``, ``pi``)."""
    line: msgspec.Raw

    def value(self) -> Any:
        """The line as Python values (parsed on each call: views are rare, resumes are not)."""
        return _any.decode(self.line)


@dataclass(frozen=True)
class SourceLine:
    """One non-blank line of a source file, as a tool module reads it."""

    raw: bytes
    """The line's bytes, without its line ending."""
    number: int
    """1-based line number in the file."""
    time: dt.datetime | None = None
    node: str | None = None
    """The source's id of this line when it has a place in the source's tree (else it is chained after the
    line before it)."""
    parent: str | None = None
    """With ``node``: the source's parent id (None, or an id not in the file: a root)."""
    compaction: tuple[str, int | None] | None = None
    """``(summary, tokens_before)`` if the line is a compaction."""


@dataclass
class Source:
    """A source file read by a tool module: its lines and what the session is."""

    path: Path
    session_id: str
    directory: str | None
    lines: list[SourceLine]
    labels: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: dt.datetime | None = None


class ImportResult(msgspec.Struct, frozen=True, kw_only=True):
    """What importing one source file did."""

    path: str
    session_id: str
    status: str
    """``imported``, or ``exists`` (the store already holds the session: nothing was written)."""
    events: int
    """Lines of the source (each one event)."""
    parent_session: str | None = None
    """For a sub-agent: the session it belongs to."""


def jsonl_files(path: Path) -> list[Path]:
    """``path`` if it is a file, else the ``*.jsonl`` files under it (recursively), sorted."""
    return [path] if path.is_file() else sorted(p for p in path.rglob("*.jsonl") if p.is_file())


def read_lines(path: Path) -> list[tuple[int, bytes]]:
    """The non-blank lines of ``path`` with their 1-based numbers, each checked to be a JSON object.

    :raises ImportRefused: naming the first line that is not (a torn last line included: the tool may still be
        writing the file; import it once it is done), or if the file has no line.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportRefused(f"cannot read {path}: {exc.strerror or exc}") from exc
    out: list[tuple[int, bytes]] = []
    for number, text in enumerate(data.split(b"\n"), 1):
        line = text.removesuffix(b"\r")
        if not line.strip():
            continue
        if not line.lstrip().startswith(b"{"):
            raise ImportRefused(f"{path}, line {number}: not a JSON object; nothing was imported")
        out.append((number, line))
    if not out:
        # A tool creates the file before its first line: imported now, it would be a session of no events that
        # every later import of the real file skips.
        raise ImportRefused(
            f"{path} is empty: not a session file yet; nothing was imported. Import it once the tool has written to it"
        )
    return out


def parse_time(value: object) -> dt.datetime | None:
    """A source timestamp (RFC 3339 text, or Unix milliseconds) as an aware UTC datetime, or None."""
    try:
        if isinstance(value, str):
            when = dt.datetime.fromisoformat(value)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            when = dt.datetime.fromtimestamp(value / 1000, dt.UTC)
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def session_id_for(candidate: object, path: Path) -> str:
    """``candidate`` if it is a valid session id, else one made from the file name."""
    try:
        return check_session_id(candidate)
    except InvalidSessionId:
        pass
    made = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).lstrip(".-")[:128].rstrip(".")
    try:
        return check_session_id(made)
    except InvalidSessionId:
        return check_session_id(f"imported-{made}"[:128].rstrip("."))


def _events(source: Source, record: type[ImportedRecord], invocation: str) -> list[StoredEvent]:
    """The source's lines as events, linked as the source's tree (see docs/IMPORT.md, "Branches")."""
    fallback = next((line.time for line in source.lines if line.time is not None), None)
    if fallback is None:
        fallback = dt.datetime.fromtimestamp(source.path.stat().st_mtime, dt.UTC)
    events: list[StoredEvent] = []
    ours: dict[str, str] = {}  # the source's node id -> our event id
    anchor_of: dict[str, str | None] = {}  # our event id -> the node (None: the root) it belongs after
    # A line without a place in the source's tree (a snapshot, a queue operation) is chained after the line
    # before it; the next line whose source parent is that line's node links to it instead, so that such
    # lines never make branches of their own.
    tip_after: dict[str | None, str] = {}
    used: set[str] = set()
    previous: str | None = None
    when = fallback
    for line in source.lines:
        when = line.time or when
        event_id = line.node if line.node is not None and line.node not in used else f"line-{line.number}"
        while event_id in used:
            event_id += "+"
        if line.node is not None:
            node = line.parent if line.parent in ours else None
            parent = tip_after.get(node, ours[node] if node is not None else None)
            ours.setdefault(line.node, event_id)
            anchor_of[event_id] = line.node
        else:
            parent = previous
            anchor = anchor_of[previous] if previous is not None else None
            tip_after[anchor] = event_id
            anchor_of[event_id] = anchor
        used.add(event_id)
        events.append(
            StoredEvent(
                id=event_id,
                session_id=source.session_id,
                parent_id=parent,
                invocation_id=invocation,
                event_type=Compaction.TYPE if line.compaction is not None else record.TYPE,
                event_data=_event_data(line, record.TYPE),
                created_at=when,
            )
        )
        previous = event_id
    return events


_NON_ASCII: Final = re.compile(r"[^\x00-\x7f]+")


@functools.lru_cache(maxsize=4096)
def _escaped(run: str) -> str:
    return json.dumps(run)[1:-1]  # the same runs recur (arrows, dashes, box drawing): escape each once


def _event_data(line: SourceLine, tag: str) -> str:
    # Non-ASCII characters (only ever inside JSON strings) are written as \u escapes: the same JSON value, and
    # an all-ASCII log lets every read skip validating UTF-8, which is most of a resume's time otherwise
    # (an imported 3.4 MB Claude Code session: 37 ms, 15 ms escaped).
    raw = line.raw.decode()
    if not line.raw.isascii():
        raw = _NON_ASCII.sub(lambda run: _escaped(run.group()), raw)
    if line.compaction is None:
        return f'{{"line":{raw}}}'
    summary, tokens = line.compaction
    before = f',"tokens_before":{tokens}' if tokens is not None else ""
    return f'{{"summary":{json.dumps(summary)}{before},"meta":{{"{tag}":{raw}}}}}'


def save(store: LocalSessionService, source: Source, record: type[ImportedRecord]) -> ImportResult:
    """Create the source's session in one write, unless the store holds it already.

    The session's metadata ``title`` is its first user message, on one line, so that lists and pickers name it.

    :raises ImportRefused: if a line is not valid UTF-8 or not valid JSON; nothing is written.
    """
    result = ImportResult(
        path=str(source.path),
        session_id=source.session_id,
        status="exists",
        events=len(source.lines),
        parent_session=source.labels.get("parent_session"),
    )
    if store.get_session(source.session_id) is not None:
        return result
    try:
        events = _events(source, record, new_id())
        title = _title(source, record)
        store.create_session(
            source.session_id,
            source.directory,
            None,
            labels=source.labels,
            events=events,
            metadata=source.metadata | ({TITLE_KEY: title} if title else {}),
            created_at=source.created_at or (events[0].created_at if events else None),
            head_id=events[-1].id if events else None,
        )
    except SessionExists:
        return result
    except (UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, SessionsError):
            raise
        raise ImportRefused(_refusal(source, exc)) from exc
    return msgspec.structs.replace(result, status="imported")


_TITLE_LENGTH: Final = 100


def _title(source: Source, record: type[ImportedRecord]) -> str | None:
    """The text of the first user message of the standard view, on one line, or None."""
    for line in source.lines:
        if line.compaction is not None:
            continue
        try:
            shown = record(line=msgspec.Raw(line.raw)).standard()
        except (msgspec.DecodeError, UnicodeDecodeError):
            continue  # refused by the store in a moment, naming the line
        for event in shown:
            if isinstance(event, UserMessage) and event.content.strip():
                return one_line(event.content, _TITLE_LENGTH)
    return None


def _refusal(source: Source, exc: Exception) -> str:
    """What is wrong with the source, naming its first bad line, and what to do."""
    for line in source.lines:
        try:
            line.raw.decode()
        except UnicodeDecodeError as bad:
            return (
                f"{source.path}, line {line.number}: not UTF-8 text (byte {bad.start + 1} of the line); "
                "nothing was imported"
            )
        try:
            _any.decode(line.raw)
        except msgspec.DecodeError as bad:
            where = f"{source.path}, line {line.number}: not valid JSON ({bad})"
            if line is source.lines[-1]:
                return (
                    f"{where}; the tool may still be writing it: import it once the session has ended, or remove "
                    "the torn last line; nothing was imported"
                )
            return f"{where}; nothing was imported"
    return f"{source.path}: {exc}; nothing was imported"


class _Line(msgspec.Struct):
    line: msgspec.Raw


class _Meta(msgspec.Struct):
    meta: dict[str, msgspec.Raw] | None = None


_line_decoder: Final = msgspec.json.Decoder(_Line)
_meta_decoder: Final = msgspec.json.Decoder(_Meta)


def export_lines(store: LocalSessionService, session_id: str, record: type[ImportedRecord]) -> bytes:
    """The session as the source file's lines, in file order: the JSON value of each line as imported.

    :raises ExportRefused: if an event was not imported from this format (appended later, or another tool's).
    :raises SessionNotFound: if there is no such session.
    """
    lines: list[bytes] = []
    for event in store.load_tree(session_id).events:
        raw: msgspec.Raw | None = None
        data = event.event_data.encode()
        try:
            if event.event_type == record.TYPE:
                raw = _line_decoder.decode(data).line
            elif event.event_type == Compaction.TYPE:
                raw = (_meta_decoder.decode(data).meta or {}).get(record.TYPE)
        except msgspec.DecodeError:
            raw = None
        if raw is None:
            raise ExportRefused(
                f"session {session_id}: event {event.id} ({event.event_type}) is not a line imported from "
                f"{record.FORMAT}, so it has no place in a {record.FORMAT} file; nothing was written. "
                "Export it as jsonl, json or markdown"
            )
        lines.append(bytes(raw))
        lines.append(b"\n")
    return b"".join(lines)
