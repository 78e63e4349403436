"""The events and stores every peer is measured on, generated the same way for each.

A turn is what an agent writes after one user prompt: the prompt, a few
hundred bytes of assistant text, tool calls with JSON input and tool results of
a few KB. After each turn the application also rewrites two metadata blobs of a
few KB (a file-read tracker and an edit-permission cache), as the reference does.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import Final

import msgspec

from sessions import ConversationEvent, Text, ToolCall, ToolResult, UserMessage, serialize_event

__all__ = ["Sizes", "Workload", "events_for", "metadata_blobs", "turn"]

_WORDS: Final = [
    "the",
    "session",
    "file",
    "test",
    "error",
    "import",
    "function",
    "return",
    "value",
    "config",
    "build",
    "append",
    "log",
    "fix",
    "path",
    "line",
]
_TOOLS: Final = ["read_file", "edit_file", "run_shell", "grep", "list_dir"]


def _prose(rng: random.Random, size: int) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)


def _code(rng: random.Random, size: int) -> str:
    lines: list[str] = []
    length = 0
    while length < size:
        indent = " " * (4 * rng.randrange(3))
        line = indent + "".join(rng.choices(string.ascii_lowercase + "_() =.,", k=rng.randrange(20, 70)))
        lines.append(line)
        length += len(line) + 1
    return "\n".join(lines)


def turn(rng: random.Random, events: int) -> list[ConversationEvent]:
    """One turn of ``events`` events: a prompt, then text and tool call/result pairs.

    A 1-event turn is a single assistant text.
    """
    if events == 1:
        return [Text(_prose(rng, rng.randrange(200, 600)))]
    out: list[ConversationEvent] = [UserMessage(_prose(rng, rng.randrange(60, 300)))]
    out.append(Text(_prose(rng, rng.randrange(200, 600))))
    call = 0
    while len(out) + 2 <= events:
        call += 1
        tool_id = f"toolu_{rng.getrandbits(64):016x}"
        tool = rng.choice(_TOOLS)
        tool_input = {"path": f"src/pkg/module_{rng.randrange(100)}.py", "limit": rng.randrange(50, 500)}
        if tool == "edit_file":
            tool_input["old"] = _code(rng, 120)
            tool_input["new"] = _code(rng, 160)
        out.append(ToolCall(tool_id, tool, tool_input))
        content = _code(rng, rng.randrange(1000, 5000))
        out.append(ToolResult(tool_id, content, is_error=rng.random() < 0.05, content_length=len(content)))
    while len(out) < events:
        out.append(Text(_prose(rng, rng.randrange(200, 600))))
    return out


def events_for(count: int, seed: int = 5) -> list[ConversationEvent]:
    """A conversation of ``count`` events made of 10-event turns."""
    rng = random.Random(seed)
    out: list[ConversationEvent] = []
    while len(out) < count:
        out.extend(turn(rng, min(10, count - len(out))))
    return out


def metadata_blobs(rng: random.Random) -> dict[str, str]:
    """The two JSON blobs the reference rewrites after every turn."""
    tracker = {
        f"src/pkg/module_{i}.py": {"mtime": rng.randrange(1 << 31), "lines": rng.randrange(900)} for i in range(40)
    }
    permissions = {"allowed": [f"src/pkg/module_{i}.py" for i in range(60)], "mode": "ask"}
    return {
        "file_read_tracker": msgspec.json.encode(tracker).decode(),
        "edit_permissions": msgspec.json.encode(permissions).decode(),
    }


def payload_bytes(events: list[ConversationEvent]) -> int:
    """Bytes of the events' JSON payloads, for reporting sizes."""
    return sum(len(serialize_event(e)[1]) for e in events)


@dataclass(frozen=True)
class Sizes:
    """How big each workload is; ``--quick`` shrinks them all."""

    resume_events: tuple[int, ...] = (1_000, 10_000, 100_000)
    store_sessions: tuple[int, ...] = (1_000, 10_000)
    verify_sessions: int = 10_000
    persist_reps: int = 60
    resume_reps: int = 7
    store_reps: int = 7
    cold_reps: int = 5
    session_events: int = 4
    """Events in each session of the store-wide workloads (find, list, verify)."""
    directories: int = 100
    """Distinct project directories the stored sessions are spread over."""
    startup_events: tuple[int, ...] = (1_000, 10_000, 100_000)
    """Events in the session an agent starts up on (issue #9: load, then one turn, in a fresh process)."""
    startup_reps: int = 11
    biglog_bytes: int = 1 << 30
    """Size of the one-log store (issue #9: the first append, get_session, set_metadata on it)."""
    biglog_reps: int = 5
    scale_sessions: tuple[int, int] = (100, 100_000)
    """The small and the large store of issue #9's size-independence targets (archive, set_metadata, create)."""
    scale_find_sessions: int = 10_000
    """Sessions in the store of issue #9's cold find_resumable target."""
    scale_reps: int = 7
    floor_reps: int = 200
    """Rounds of issue #9's one-event persist against the raw write floors."""
    fresh_warmup: int = 1
    """Untimed rounds of fresh processes before the timed ones (issue #9's sections)."""
    window_events: tuple[int, ...] = (1_000, 10_000, 100_000, 1_000_000)
    """Sessions ``load_events(last=20)`` reads its window from (issue #10; the first and last are compared)."""
    window_last: int = 20
    window_warm_reps: int = 300
    window_fresh_reps: int = 15
    sdk_items: int = 20_000
    """Items of the session read against the OpenAI Agents SDK's ``SQLiteSession.get_items(limit=20)``."""
    sdk_reps: int = 300
    compaction_events: int = 100_000
    """The session resumed from its newest compaction (issue #10), against a full resume of it."""
    compaction_tail: int = 100
    """Events from the newest compaction to the end (it included)."""
    compaction_reps: int = 11


FULL: Final = Sizes()
QUICK: Final = Sizes(
    resume_events=(200, 1_000),
    store_sessions=(50, 200),
    verify_sessions=200,
    persist_reps=8,
    resume_reps=3,
    store_reps=3,
    cold_reps=2,
    directories=10,
    startup_events=(200, 1_000),
    startup_reps=2,
    biglog_bytes=20 << 20,
    biglog_reps=2,
    scale_sessions=(20, 1_000),
    scale_find_sessions=200,
    scale_reps=2,
    floor_reps=20,
    fresh_warmup=0,
    window_events=(200, 5_000),
    window_warm_reps=20,
    window_fresh_reps=2,
    sdk_items=500,
    sdk_reps=20,
    compaction_events=2_000,
    compaction_tail=20,
    compaction_reps=2,
)


@dataclass(frozen=True)
class Workload:
    """One named measurement and the size it runs at."""

    name: str
    size: int
