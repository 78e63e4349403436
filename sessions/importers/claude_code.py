"""Claude Code sessions (``~/.claude/projects/<project>/<session>.jsonl``, with ``<session>/subagents/``).

Every line has a ``type``: ``user``, ``assistant``, ``system``, ``progress`` (hooks,
tools and sub-agents reporting), ``file-history-snapshot``, ``queue-operation``,
``summary``... Lines with a ``uuid`` form a tree through ``parentUuid``: a tool
call's progress lines and parallel tool calls fork it, and a ``compact_boundary``
starts it again, pointing back through ``logicalParentUuid``. An assistant message
is split over several lines (one content block each) sharing ``message.id``.
A sub-agent's file becomes its own session, ``<session>.agent-<agentId>``, naming
its parent session and the Task tool call it ran for. Mapping: docs/IMPORT.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Final

import msgspec

from sessions.events import (
    Compaction,
    EventBase,
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

__all__ = ["ClaudeCodeRecord", "import_file", "source_files"]

FORMAT: Final = "claude-code"


class ClaudeCodeRecord(ImportedRecord, frozen=True):
    """One line of a Claude Code session file, verbatim."""

    TYPE: ClassVar[str] = "claude_code"
    FORMAT: ClassVar[str] = FORMAT

    def standard(self) -> Sequence[EventBase]:
        """User and assistant content blocks as standard events; progress, snapshots and hooks as nothing."""
        line = self.value()
        if not isinstance(line, dict):
            return ()
        kind = line.get("type")
        message = line.get("message")
        if kind == "user" and isinstance(message, dict):
            return _user(line, message)
        if kind == "assistant" and isinstance(message, dict):
            return _assistant(line, message)
        if kind == "system" and line.get("subtype") == "compact_boundary":
            metadata = line.get("compactMetadata") or {}
            return (Compaction(summary=str(line.get("content") or ""), tokens_before=metadata.get("preTokens")),)
        return ()


def _user(line: dict[str, Any], message: dict[str, Any]) -> list[EventBase]:
    if line.get("isCompactSummary"):
        return []  # its text is the summary of the Compaction the boundary before it became
    content = message.get("content")
    context = bool(line.get("isMeta"))
    if isinstance(content, str):
        return [SystemContext(content) if context else UserMessage(content)]
    events: list[EventBase] = []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            events.append(SystemContext(block["text"]) if context else UserMessage(block["text"]))
        elif kind == "image":
            events.append(_image(block))
        elif kind == "tool_result":
            inner = block.get("content")
            structured = line.get("toolUseResult")
            events.append(
                ToolResult(
                    str(block.get("tool_use_id") or ""),
                    text_of(inner),
                    bool(block.get("is_error")),
                    meta=meta(tool_use_result=structured),
                )
            )
            if isinstance(inner, list):
                events += [_image(b) for b in inner if isinstance(b, dict) and b.get("type") == "image"]
    return events


def _image(block: dict[str, Any]) -> EventBase:
    source = block.get("source") or {}
    return attachment("image", source.get("media_type"), source.get("data"), url=source.get("url"))


def _assistant(line: dict[str, Any], message: dict[str, Any]) -> list[EventBase]:
    info = meta(
        model=message.get("model"),
        usage=message.get("usage"),
        stop_reason=message.get("stop_reason"),
        message_id=message.get("id"),
        request_id=line.get("requestId"),
    )
    events: list[EventBase] = []
    content = message.get("content")
    if isinstance(content, str):
        return [Text(content, meta=info)]
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            events.append(Text(str(block.get("text") or ""), meta=info))
        elif kind == "thinking":
            events.append(Reasoning(str(block.get("thinking") or ""), signature=block.get("signature"), meta=info))
        elif kind == "redacted_thinking":
            events.append(Reasoning(encrypted=block.get("data"), meta=info))
        elif kind in ("tool_use", "server_tool_use"):
            events.append(
                ToolCall(str(block.get("id") or ""), str(block.get("name") or ""), block.get("input"), meta=info)
            )
    return events


class _Line(msgspec.Struct):
    """The fields of a line the import needs (msgspec skips the rest without building it)."""

    type: Any = None
    subtype: Any = None
    uuid: Any = None
    parentUuid: Any = None
    logicalParentUuid: Any = None
    timestamp: Any = None
    sessionId: Any = None
    cwd: Any = None
    gitBranch: Any = None
    version: Any = None
    agentId: Any = None
    isCompactSummary: Any = None
    compactMetadata: Any = None
    content: Any = None


_line: Final = msgspec.json.Decoder(_Line)
_any: Final = msgspec.json.Decoder(Any)


def source_files(path: Path) -> list[Path]:
    """The session files under ``path`` (a file or a folder, recursively); sub-agent files come with their session."""
    files = jsonl_files(path)
    if path.is_file():
        return files
    sessions = {p.with_suffix("") for p in files}
    # A sub-agent file whose session file is here is imported with it (after it, so its parent can be named).
    return [p for p in files if not (_is_subagent(p) and p.parent.parent in sessions)]


def _is_subagent(path: Path) -> bool:
    return path.parent.name == "subagents" and path.name.startswith("agent-")


def import_file(store: LocalSessionService, path: Path) -> list[ImportResult]:
    """Import one session file and its sub-agents (``<session>/subagents/agent-*.jsonl``).

    :raises ImportRefused: if a file is not a session file; nothing of it is written.
    """
    if _is_subagent(path):
        main = path.parent.parent.with_suffix(".jsonl")
        parent_lines = _read(main)[1] if main.is_file() else []
        return [_import_subagent(store, path, path.parent.parent.name, parent_lines)]
    source, lines = _read(path)
    results = [save(store, source, ClaudeCodeRecord)]
    agents = path.with_suffix("") / "subagents"
    for agent in sorted(agents.glob("agent-*.jsonl")) if agents.is_dir() else ():
        results.append(_import_subagent(store, agent, source.session_id, lines))
    return results


def _import_subagent(
    store: LocalSessionService, path: Path, parent: str, parent_lines: list[tuple[bytes, _Line]]
) -> ImportResult:
    source, lines = _read(path, session_id=f"{session_id_for(parent, path)}.{path.stem}")
    agent = next((line.agentId for _, line in lines if isinstance(line.agentId, str)), path.stem.removeprefix("agent-"))
    event = _task_call(parent_lines, agent)
    source.labels["parent_session"] = session_id_for(parent, path)
    source.metadata |= {"parent_session": session_id_for(parent, path), "parent_event": event, "agent_id": agent}
    return save(store, source, ClaudeCodeRecord)


def _task_call(lines: list[tuple[bytes, _Line]], agent: str) -> str | None:
    """The uuid of the line holding the Task tool call that ran sub-agent ``agent``, if the session names it."""
    needle = agent.encode()
    call_id: object = None
    for raw, _ in lines:
        if needle not in raw:
            continue
        value = _object(raw)
        result = value.get("toolUseResult")
        if isinstance(result, dict) and result.get("agentId") == agent:
            blocks = _dict(value.get("message")).get("content")
            call_id = next((b.get("tool_use_id") for b in _list(blocks) if isinstance(b, dict)), None)
        elif value.get("type") == "progress" and _dict(value.get("data")).get("agentId") == agent:
            call_id = value.get("parentToolUseID")
        if isinstance(call_id, str):
            break
    if not isinstance(call_id, str):
        return None
    needle = call_id.encode()
    for raw, line in lines:
        if needle in raw and line.type == "assistant":
            content = _dict(_object(raw).get("message")).get("content")
            if any(isinstance(b, dict) and b.get("id") == call_id for b in _list(content)):
                return line.uuid if isinstance(line.uuid, str) else None
    return None


def _object(raw: bytes) -> dict[str, Any]:
    """The line as a dict; empty if it is not one, or not JSON at all.

    The session file of a running session ends in a torn line, and the main session, imported earlier, is not
    read again (so not refused) when a new sub-agent of it is imported: its lines are searched as they are.
    """
    try:
        value = _any.decode(raw)
    except msgspec.DecodeError:
        return {}
    return _dict(value)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _read(path: Path, *, session_id: str | None = None) -> tuple[Source, list[tuple[bytes, _Line]]]:
    numbered = read_lines(path)
    lines: list[tuple[bytes, _Line]] = []
    for _, raw in numbered:
        try:
            lines.append((raw, _line.decode(raw)))
        except msgspec.DecodeError:
            lines.append((raw, _Line()))  # kept verbatim all the same, chained after the line before it
    summaries = {
        line.parentUuid: text_of(_dict(_object(raw).get("message")).get("content"))
        for raw, line in lines
        if line.isCompactSummary and isinstance(line.parentUuid, str)
    }
    out: list[SourceLine] = []
    for (number, raw), (_, line) in zip(numbered, lines, strict=True):
        node = line.uuid if isinstance(line.uuid, str) else None
        parent = line.parentUuid if isinstance(line.parentUuid, str) else None
        compaction = None
        if line.type == "system" and line.subtype == "compact_boundary":
            parent = parent or (line.logicalParentUuid if isinstance(line.logicalParentUuid, str) else None)
            tokens = line.compactMetadata.get("preTokens") if isinstance(line.compactMetadata, dict) else None
            summary = summaries.get(node, "") if node is not None else ""
            content = line.content if isinstance(line.content, str) else ""
            compaction = (summary or content, tokens if isinstance(tokens, int) else None)
        out.append(
            SourceLine(raw, number, time=parse_time(line.timestamp), node=node, parent=parent, compaction=compaction)
        )
    first = next((line for _, line in lines if line.sessionId is not None), _Line())
    last = next((line for _, line in reversed(lines) if line.gitBranch is not None), _Line())
    cwd = next((line.cwd for _, line in lines if isinstance(line.cwd, str)), None)
    source = Source(
        path=path,
        session_id=session_id or session_id_for(path.stem, path),  # Claude Code names the file by session id
        directory=cwd,
        lines=out,
        labels={"source": FORMAT},
        metadata=meta(
            source_path=str(path.resolve()),
            source_session_id=first.sessionId,
            git_branch=last.gitBranch,
            version=next((line.version for _, line in reversed(lines) if line.version is not None), None),
        )
        or {},
    )
    return source, lines
