"""pi coding agent sessions (``~/.pi/agent/sessions/<folder>/<time>_<id>.jsonl``).

The first line is the ``session`` header (id, cwd, provider, model, thinking level);
then ``message`` entries (roles ``user``, ``assistant``, ``toolResult``,
``bashExecution``), ``compaction`` (summary, tokens before), ``model_change``,
``thinking_level_change``, and in later versions ``session_info``,
``branch_summary``, ``label``, ``custom``... Format v1 is a list in file order;
v3 entries carry ``id``/``parentId`` and form a tree whose active leaf is the
last entry. Mapping: docs/IMPORT.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Final

import msgspec

from sessions.events import (
    Compaction,
    EventBase,
    OutOfBandOutput,
    Reasoning,
    SystemContext,
    Text,
    ToolCall,
    ToolResult,
    UserMessage,
)
from sessions.importers._source import (
    ImportedRecord,
    ImportResult,
    Source,
    SourceLine,
    jsonl_files,
    parse_time,
    read_lines,
    save,
    session_id_for,
)
from sessions.importers._views import attachment, meta, text_of
from sessions.store import LocalSessionService

__all__ = ["PiRecord", "import_file", "source_files"]

FORMAT: Final = "pi"


class PiRecord(ImportedRecord, frozen=True):
    """One line of a pi session file, verbatim."""

    TYPE: ClassVar[str] = "pi"
    FORMAT: ClassVar[str] = FORMAT

    def standard(self) -> Sequence[EventBase]:
        """Messages as standard events; the header and model or thinking-level changes as nothing."""
        line = self.value()
        if not isinstance(line, dict):
            return ()
        kind = line.get("type")
        if kind == "message" and isinstance(line.get("message"), dict):
            return _message(line["message"])
        if kind == "compaction":
            return (Compaction(summary=str(line.get("summary") or ""), tokens_before=_int(line.get("tokensBefore"))),)
        if kind == "branch_summary" and isinstance(line.get("summary"), str):
            return (SystemContext(line["summary"]),)
        return ()


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _message(message: dict[str, Any]) -> list[EventBase]:
    role = message.get("role")
    content = message.get("content")
    if role == "user":
        if isinstance(content, str):
            return [UserMessage(content)]
        return [_block(b, UserMessage) for b in content or () if isinstance(b, dict) and b.get("type") in _SHOWN]
    if role == "assistant":
        usage = message.get("usage")
        info = meta(
            model=message.get("model"),
            provider=message.get("provider"),
            api=message.get("api"),
            usage=usage,
            stop_reason=message.get("stopReason"),
            cost=usage.get("cost") if isinstance(usage, dict) else None,
            error=message.get("errorMessage"),
        )
        events: list[EventBase] = []
        for block in content if isinstance(content, list) else ():
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text":
                events.append(Text(str(block.get("text") or ""), meta=info))
            elif kind == "thinking":
                events.append(
                    Reasoning(str(block.get("thinking") or ""), signature=block.get("thinkingSignature"), meta=info)
                )
            elif kind == "toolCall":
                name = str(block.get("name") or "")
                events.append(ToolCall(str(block.get("id") or ""), name, block.get("arguments"), meta=info))
        return events
    if role == "toolResult":
        result: list[EventBase] = [
            ToolResult(
                str(message.get("toolCallId") or ""),
                text_of(content),
                bool(message.get("isError")),
                meta=meta(tool_name=message.get("toolName"), details=message.get("details")),
            )
        ]
        images = [b for b in content or () if isinstance(b, dict) and b.get("type") == "image"]
        return result + [_block(b, UserMessage) for b in images]
    if role == "bashExecution":
        return [
            OutOfBandOutput(
                name="bash",
                command=message.get("command") if isinstance(message.get("command"), str) else None,
                content=str(message.get("output") or ""),
                meta=meta(exit_code=message.get("exitCode"), cancelled=message.get("cancelled") or None),
            )
        ]
    text = text_of(content) or (message.get("summary") if isinstance(message.get("summary"), str) else "")
    return [SystemContext(text)] if text else []  # custom, branch and compaction summary messages


_SHOWN: Final = ("text", "image")


def _block(block: dict[str, Any], text: type[UserMessage]) -> EventBase:
    if block.get("type") == "image":
        return attachment("image", block.get("mimeType"), block.get("data"))
    return text(str(block.get("text") or ""))


class _Line(msgspec.Struct):
    type: Any = None
    id: Any = None
    parentId: Any = msgspec.UNSET
    timestamp: Any = None
    cwd: Any = None
    version: Any = None
    provider: Any = None
    modelId: Any = None
    thinkingLevel: Any = None
    branchedFrom: Any = None
    parentSession: Any = None
    summary: Any = None
    tokensBefore: Any = None


_line: Final = msgspec.json.Decoder(_Line)


def source_files(path: Path) -> list[Path]:
    """The session files under ``path`` (a file or a folder, recursively)."""
    return jsonl_files(path)


def import_file(store: LocalSessionService, path: Path) -> list[ImportResult]:
    """Import one pi session file.

    :raises ImportRefused: if it is not a session file; nothing is written.
    """
    numbered = read_lines(path)
    out: list[SourceLine] = []
    header = _Line()
    for number, raw in numbered:
        try:
            line = _line.decode(raw)
        except msgspec.DecodeError:
            line = _Line()
        if line.type == "session" and header.type is None:
            header = line
        # v3 entries have a place in the tree (parentId, null for a root); the header and v1 entries do not.
        on_tree = line.parentId is not msgspec.UNSET and isinstance(line.id, str)
        compaction = None
        if line.type == "compaction":
            compaction = (str(line.summary or ""), _int(line.tokensBefore))
        out.append(
            SourceLine(
                raw,
                number,
                time=parse_time(line.timestamp),
                node=line.id if on_tree else None,
                parent=line.parentId if on_tree and isinstance(line.parentId, str) else None,
                compaction=compaction,
            )
        )
    source = Source(
        path=path,
        session_id=session_id_for(header.id, path),
        directory=header.cwd if isinstance(header.cwd, str) else None,
        lines=out,
        labels={"source": FORMAT},
        metadata=meta(
            source_path=str(path.resolve()),
            format_version=header.version if header.version is not None else 1,
            provider=header.provider,
            model_id=header.modelId,
            thinking_level=header.thinkingLevel,
            branched_from=header.branchedFrom,
            parent_session=header.parentSession,
        )
        or {},
        created_at=parse_time(header.timestamp),
    )
    return [save(store, source, PiRecord)]
