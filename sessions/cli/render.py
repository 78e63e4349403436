"""Showing sessions to people: consoles, relative times, conversation lines, markdown."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from typing import IO

import msgspec
from rich.console import Console
from rich.text import Text as RichText

from eventlog import utcnow
from sessions.events import (
    Attachment,
    Compaction,
    EventBase,
    OutOfBandOutput,
    Reasoning,
    SkillInvocation,
    SystemContext,
    Text,
    ToolCall,
    ToolResult,
    UnknownEvent,
    UserMessage,
)
from sessions.models import StoredSession

__all__ = ["event_text", "make_console", "markdown_transcript", "time_ago"]

AnyEvent = EventBase

_PLAIN_WIDTH = 100_000
"""Width used when output is not a terminal, so tables are never squeezed or cut for scripts."""


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich exits 1 here; the reader going away (`sessions show ID | head`) is no failure, and main() ends
        # quietly with 0 on this error.
        self.quiet = True
        raise BrokenPipeError


def make_console(file: IO[str] | None = None, *, terminal: bool | None = None) -> Console:
    """A rich console: colours and boxes on a terminal; no escape codes at all when piped or ``NO_COLOR`` is set.

    When piped it is as wide as ``$COLUMNS`` if that is set, else wide enough never to cut a line for scripts.

    :param terminal: treat ``file`` as a terminal or not (a pager is a pipe that shows on one).
    """
    stream = file if file is not None else sys.stdout
    if terminal is None:
        terminal = stream.isatty()
    plain = not terminal or bool(os.environ.get("NO_COLOR"))  # no-color.org: set and not empty
    columns = os.environ.get("COLUMNS", "")
    width = None if terminal else int(columns) if columns.isdigit() and int(columns) > 0 else _PLAIN_WIDTH
    return _Console(
        file=stream,
        width=width,
        force_terminal=terminal,
        color_system=None if plain else "auto",
        highlight=False,
        emoji=False,
        soft_wrap=not terminal,
    )


def time_ago(when: dt.datetime, now: dt.datetime | None = None) -> str:
    """``when`` relative to ``now``, the way people say it: "just now", "3 minutes ago", "2 days ago"."""
    seconds = ((now or utcnow()) - when).total_seconds()
    if seconds < 0:
        return "in the future"
    if seconds < 45:
        return "just now"
    if seconds >= 86400:
        count, unit = int(seconds // 86400), "day"
    elif seconds >= 3600:
        count, unit = int(seconds // 3600), "hour"
    else:
        count, unit = max(1, int(seconds // 60)), "minute"
    return f"{count} {unit}{'' if count == 1 else 's'} ago"


def event_text(event: AnyEvent) -> RichText:
    """One event as a styled line (or block) of a conversation."""
    line = RichText()
    match event:
        case UserMessage(content=content):
            line.append("you> ", style="bold cyan")
            line.append(content)
        case Text(content=content):
            line.append("assistant> ", style="bold green")
            line.append(content)
        case ToolCall(name=name, input=value):
            line.append(f"  tool call {name} ", style="yellow")
            line.append(json.dumps(value, ensure_ascii=False))
        case ToolResult(content=content, is_error=is_error):
            line.append("  tool error: " if is_error else "  tool result: ", style="red" if is_error else "yellow")
            line.append(_indent(content) if content.strip() else "(no output)")
        case OutOfBandOutput(name=name, command=command, content=content):
            line.append(f"  ({name}) $ {command or ''}\n", style="magenta")
            line.append(_indent(content, first=True))
        case SystemContext(content=content):
            line.append("  [context] ", style="dim")
            line.append(content, style="dim")
        case SkillInvocation(name=name, arguments=arguments, content=content):
            line.append(f"  skill {name}{' ' + arguments if arguments else ''}: ", style="blue")
            line.append(_indent(content))
        case Compaction(summary=summary, tokens_before=tokens):
            before = f" of {tokens} tokens" if tokens is not None else ""
            line.append(f"── compaction{before}: the conversation above, summarized ──\n", style="bold magenta")
            line.append(_indent(summary, first=True), style="magenta")
        case Reasoning(text=text, encrypted=encrypted, summary=summary):
            shown = text or "\n".join(summary or ()) or ("(encrypted)" if encrypted else "")
            line.append("  thinking: ", style="dim italic")
            line.append(_indent(shown), style="dim italic")
        case Attachment(name=name, media_type=media_type, data=data, uri=uri):
            size = f", {len(data):,} bytes" if data is not None else ""
            line.append(f"  attachment {name} ({media_type}{size}){' ' + uri if uri else ''}", style="blue")
        case UnknownEvent(type=event_type, data=data):
            line.append(f"  [{event_type}: unknown to this version, kept as is] ", style="dim")
            line.append(data, style="dim")
        case _:  # an application's own type
            line.append(f"  [{event.TYPE}] ", style="dim")
            line.append(json.dumps(msgspec.to_builtins(event), ensure_ascii=False), style="dim")
    return line


def _indent(content: str, *, first: bool = False) -> str:
    lines = content.rstrip("\n").split("\n")
    if len(lines) == 1 and not first:
        return lines[0]
    return "\n".join(("    " + x) if (i or first) else x for i, x in enumerate(lines))


def markdown_transcript(session: StoredSession, timeline: Sequence[tuple[dt.datetime, AnyEvent]]) -> str:
    """The conversation as a Markdown document, for people to read or paste."""
    out = [
        f"# Session {session.id}",
        "",
        f"- directory: `{session.directory}`" if session.directory else "- directory: (none)",
        f"- git root: `{session.git_root}`" if session.git_root else "- git root: (none)",
        f"- created: {session.created_at.isoformat(timespec='seconds')}",
        f"- last active: {session.updated_at.isoformat(timespec='seconds')}",
    ]
    if session.archived_at is not None:
        out.append(f"- archived: {session.archived_at.isoformat(timespec='seconds')}")
    for when, event in timeline:
        out += ["", *_markdown_event(event, when.isoformat(timespec="seconds"))]
    return "\n".join(out) + "\n"


def _fence(body: str, info: str = "") -> list[str]:
    fence = "```"
    while fence in body:
        fence += "`"
    return [fence + info, body.rstrip("\n"), fence]


def _markdown_event(event: AnyEvent, when: str) -> list[str]:
    match event:
        case UserMessage(content=content):
            return [f"## You ({when})", "", content]
        case Text(content=content):
            return [f"## Assistant ({when})", "", content]
        case ToolCall(id=call_id, name=name, input=value):
            return [f"**Tool call** `{name}` (`{call_id}`)", "", *_fence(json.dumps(value, indent=2), "json")]
        case ToolResult(tool_use_id=call_id, content=content, is_error=is_error):
            return [f"**Tool {'error' if is_error else 'result'}** (`{call_id}`)", "", *_fence(content)]
        case OutOfBandOutput(name=name, command=command, content=content):
            return [f"**{name}** `{command or ''}`", "", *_fence(content)]
        case SystemContext(content=content):
            return ["**Context**", "", *_fence(content)]
        case SkillInvocation(name=name, arguments=arguments, content=content):
            return [f"**Skill** `{name}` {arguments or ''}".rstrip(), "", content]
        case Compaction(summary=summary, tokens_before=tokens):
            before = f" of {tokens} tokens" if tokens is not None else ""
            return [f"**Compaction{before}**: the conversation above, summarized", "", *_fence(summary)]
        case Reasoning(text=text, encrypted=encrypted, summary=summary):
            shown = text or "\n".join(summary or ()) or ("(encrypted)" if encrypted else "")
            return ["**Thinking**", "", *_fence(shown)]
        case Attachment(name=name, media_type=media_type, uri=uri):
            return [f"**Attachment** `{name}` ({media_type}){' ' + uri if uri else ''}"]
        case UnknownEvent(type=event_type, data=data):
            return [f"**Unknown event `{event_type}`** (kept as is)", "", *_fence(data, "json")]
    body = json.dumps(msgspec.to_builtins(event), indent=2, ensure_ascii=False)
    return [f"**`{event.TYPE}`**", "", *_fence(body, "json")]
