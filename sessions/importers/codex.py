"""OpenAI Codex CLI sessions (``~/.codex/sessions/YYYY/MM/DD/rollout-<time>-<id>.jsonl``).

Every line is ``{"timestamp", "type", "payload"}``: ``session_meta`` first (id, cwd,
git commit / branch / repository URL, CLI version), then ``turn_context`` each turn
(model, effort, policies), ``response_item`` (what goes to and comes from the
model: ``message``, ``reasoning`` with encrypted content and summaries,
``function_call`` / ``function_call_output``, ``custom_tool_call``...),
``event_msg`` (what the UI showed: token counts, agent and user messages, which
repeat response items) and ``compacted``. A rollout is a list in file order.
Mapping: docs/IMPORT.md.
"""

from __future__ import annotations

import json
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
from sessions.importers._views import data_url_attachment, meta, text_of
from sessions.store import LocalSessionService

__all__ = ["CodexRecord", "import_file", "source_files"]

FORMAT: Final = "codex"

_CONTEXT_TAGS: Final = ("<environment_context>", "<user_instructions>", "<user_shell_command>")
"""User-role messages Codex writes itself, for the model: context, not something the user typed."""


class CodexRecord(ImportedRecord, frozen=True):
    """One line of a Codex rollout file, verbatim."""

    TYPE: ClassVar[str] = "codex"
    FORMAT: ClassVar[str] = FORMAT

    def standard(self) -> Sequence[EventBase]:
        """Response items as standard events; ``event_msg`` lines (UI echoes, token counts) and turn contexts
        as nothing."""
        line = self.value()
        if not isinstance(line, dict):
            return ()
        payload = line.get("payload")
        kind = line.get("type")
        if kind == "response_item" and isinstance(payload, dict):
            return _item(payload)
        if kind == "compacted" and isinstance(payload, dict):
            return (Compaction(summary=str(payload.get("message") or "")),)
        if kind == "session_meta" and isinstance(payload, dict) and isinstance(payload.get("instructions"), str):
            return (SystemContext(payload["instructions"]),)
        return ()


def _item(item: dict[str, Any]) -> list[EventBase]:
    kind = item.get("type")
    if kind == "message":
        return _message(item)
    if kind == "reasoning":
        summary = [s.get("text") for s in item.get("summary") or () if isinstance(s, dict)]
        return [
            Reasoning(
                text_of(item.get("content"), kinds=("reasoning_text", "text")),
                encrypted=item.get("encrypted_content"),
                summary=[s for s in summary if isinstance(s, str)] or None,
            )
        ]
    if kind in ("function_call", "custom_tool_call"):
        arguments = item.get("arguments", item.get("input"))
        return [ToolCall(str(item.get("call_id") or ""), str(item.get("name") or ""), _json_or_text(arguments))]
    if kind in ("local_shell_call", "web_search_call"):
        name = "local_shell" if kind == "local_shell_call" else "web_search"
        return [ToolCall(str(item.get("call_id") or item.get("id") or ""), name, item.get("action"))]
    if kind in ("function_call_output", "custom_tool_call_output"):
        return _output(item)
    return []  # ghost snapshots and items of newer versions


def _message(item: dict[str, Any]) -> list[EventBase]:
    role = item.get("role")
    events: list[EventBase] = []
    for block in item.get("content") or ():
        if not isinstance(block, dict):
            continue
        text = block.get("text")
        if block.get("type") == "input_image":
            events.append(data_url_attachment("image", block.get("image_url")))
        elif not isinstance(text, str):
            continue
        elif role == "assistant":
            events.append(Text(text))
        elif role == "user" and not text.lstrip().startswith(_CONTEXT_TAGS):
            events.append(UserMessage(text))
        else:
            events.append(SystemContext(text))
    return events


def _output(item: dict[str, Any]) -> list[EventBase]:
    output = item.get("output")
    call_id = str(item.get("call_id") or "")
    if isinstance(output, list):  # content items: text and images
        images = [data_url_attachment("image", b.get("image_url")) for b in output if isinstance(b, dict)]
        return [ToolResult(call_id, text_of(output), False), *[a for a in images if a.data or a.uri]]
    text = output if isinstance(output, str) else json.dumps(output)
    # Shell output comes as JSON text: {"output": ..., "metadata": {"exit_code": ..., "duration_seconds": ...}}.
    parsed = _json_or_text(text)
    if isinstance(parsed, dict) and isinstance(parsed.get("output"), str):
        details = parsed.get("metadata")
        code = details.get("exit_code") if isinstance(details, dict) else None
        return [ToolResult(call_id, parsed["output"], bool(code), meta=meta(metadata=details))]
    return [ToolResult(call_id, text, False)]


def _json_or_text(value: object) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class _Payload(msgspec.Struct):
    id: Any = None
    timestamp: Any = None
    cwd: Any = None
    git: Any = None
    cli_version: Any = None
    originator: Any = None
    model_provider: Any = None
    source: Any = None
    message: Any = None


class _Line(msgspec.Struct):
    timestamp: Any = None
    type: Any = None
    payload: _Payload | None = None


_line: Final = msgspec.json.Decoder(_Line)


def source_files(path: Path) -> list[Path]:
    """The rollout files under ``path`` (a file or a folder, recursively)."""
    return jsonl_files(path)


def import_file(store: LocalSessionService, path: Path) -> list[ImportResult]:
    """Import one Codex rollout file.

    :raises ImportRefused: if it is not a session file; nothing is written.
    """
    out: list[SourceLine] = []
    header = _Payload()
    for number, raw in read_lines(path):
        try:
            line = _line.decode(raw)
        except msgspec.DecodeError:
            line = _Line()
        payload = line.payload or _Payload()
        if line.type == "session_meta" and header.id is None:
            header = payload
        compaction = (str(payload.message or ""), None) if line.type == "compacted" else None
        out.append(SourceLine(raw, number, time=parse_time(line.timestamp), compaction=compaction))
    source = Source(
        path=path,
        session_id=session_id_for(header.id, path),
        directory=header.cwd if isinstance(header.cwd, str) else None,
        lines=out,
        labels={"source": FORMAT},
        metadata=meta(
            source_path=str(path.resolve()),
            git=header.git,
            cli_version=header.cli_version,
            originator=header.originator,
            model_provider=header.model_provider,
        )
        or {},
        created_at=parse_time(header.timestamp),
    )
    return [save(store, source, CodexRecord)]
