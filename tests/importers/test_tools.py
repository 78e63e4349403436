"""What each tool's import keeps: Claude Code's tree, forks and sub-agents; the mapped conversations of all three."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from sessions import (
    Compaction,
    EventBase,
    OutOfBandOutput,
    Reasoning,
    SessionManager,
    SystemContext,
    Text,
    ToolCall,
    ToolResult,
    UserMessage,
)
from sessions.events import standard_events
from tests.importers.conftest import SESSIONS, SUBAGENTS, Imported, transcript

CLAUDE = SESSIONS["claude-code"]
MAIN = CLAUDE[0]  # the one with sub-agents


def _lines(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in transcript(name).read_text(encoding="utf-8").splitlines() if line.strip()]


def _source_parent(line: dict[str, Any]) -> str | None:
    if line.get("subtype") == "compact_boundary" and line.get("parentUuid") is None:
        return line.get("logicalParentUuid")
    parent: str | None = line.get("parentUuid")
    return parent


def _every_event(imported: Imported, name: str) -> list[EventBase]:
    """The standard view of every event of the session, all branches, in file order."""
    store = imported.store
    tree = store.load_tree(imported.session_id(name))
    return standard_events(store.deserialize_event(e.event_type, e.event_data) for e in tree.events)


def _of(events: list[EventBase], kind: type[Any]) -> Iterator[Any]:
    return (e for e in events if isinstance(e, kind))


@pytest.mark.parametrize("name", CLAUDE + SUBAGENTS)
def test_claude_code_tree_is_the_sources(imported: Imported, name: str) -> None:
    lines = _lines(name)
    tree = imported.store.load_tree(imported.session_id(name))
    uuids = {line["uuid"] for line in lines if "uuid" in line}
    # Each line with a uuid hangs from its source parent (or from a line without a uuid chained in between).
    for event, line in zip(tree.events, lines, strict=True):
        if "uuid" in line:
            assert event.id == line["uuid"]
            parent = _source_parent(line)
            linked = event.parent_id
            while linked is not None and linked.startswith("line-"):  # a snapshot or queue line in between
                linked = tree.parent_of[linked]
            assert linked == (parent if parent in uuids else None)
    source_parents = {_source_parent(line) for line in lines if "uuid" in line}
    source_leaves = uuids - source_parents
    assert len(tree.heads) == len(source_leaves)
    assert tree.active_head == lines[-1]["uuid"]  # the source's last line is the head it continues from


def test_claude_code_parallel_tool_calls_fork(imported: Imported) -> None:
    lines = _lines(CLAUDE[1])
    kids: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        if line.get("parentUuid"):
            kids.setdefault(line["parentUuid"], []).append(line)
    # A second tool call of the same message and the first call's result both hang from the first call.
    forks = [p for p, c in kids.items() if {k["type"] for k in c} == {"assistant", "user"}]
    assert forks
    tree = imported.store.load_tree(imported.session_id(CLAUDE[1]))
    for parent in forks:
        assert sum(1 for e in tree.events if e.parent_id == parent) == len(kids[parent])
    assert tree.forked and len(tree.branches()) == len(tree.heads)


def test_claude_code_sub_agents_are_sessions_naming_their_parent(imported: Imported) -> None:
    parent = imported.session_id(MAIN)
    agents = imported.store.list_sessions(labels={"source": "claude-code", "parent_session": parent})
    assert sorted(s.id for s in agents) == [f"{parent}.agent-a2898e3", f"{parent}.agent-acompact-e1f845"]
    task = imported.store.metadata(f"{parent}.agent-a2898e3")
    assert task["parent_session"] == parent and task["agent_id"] == "a2898e3"
    # The event it names is the Task tool call that ran it.
    (event,) = [e for e in imported.store.load_tree(parent).events if e.id == task["parent_event"]]
    calls = list(_of(list(imported.store.deserialize_event(event.event_type, event.event_data).standard()), ToolCall))
    assert [c.name for c in calls] == ["Task"]
    first = next(_of(_every_event(imported, SUBAGENTS[0]), UserMessage))
    assert first.content.startswith("Very thorough exploration. I need to understand:")
    assert calls[0].input["prompt"] == first.content


@pytest.mark.parametrize(
    ("name", "first_words", "tokens"),
    [
        (CLAUDE[0], "Work on bead spotter-dov.", 170251),
        (CLAUDE[1], "Work on bead spotter-4te.", 142431),
        (CLAUDE[2], "Work on bead spotter-a0y.", 167117),
    ],
)
def test_claude_code_conversation(imported: Imported, name: str, first_words: str, tokens: int) -> None:
    events = _every_event(imported, name)
    assert next(_of(events, UserMessage)).content.startswith(first_words)
    assert {"Bash", "Edit", "Read"} <= {c.name for c in _of(events, ToolCall)}
    calls = {c.id for c in _of(events, ToolCall)}
    assert {r.tool_use_id for r in _of(events, ToolResult)} <= calls
    assert any(r.meta and "tool_use_result" in r.meta for r in _of(events, ToolResult))  # structured output
    text = next(_of(events, Text))
    assert text.meta is not None and text.meta["model"].startswith("claude-") and "usage" in text.meta
    assert any(r.text and r.signature for r in _of(events, Reasoning))
    (compaction,) = _of(events, Compaction)
    assert compaction.tokens_before == tokens
    assert compaction.summary.startswith("This session is being continued from a previous conversation")
    # A resume from the compaction starts at it: the source's boundary is our checkpoint.
    stored = imported.store.get_session(imported.session_id(name))
    assert stored is not None
    resumed = SessionManager.resume(imported.store, stored, from_compaction=True)
    assert isinstance(resumed.events[0], Compaction)
    assert resumed.events[0].tokens_before == tokens


def test_codex_conversation(imported: Imported) -> None:
    (name,) = SESSIONS["codex"]
    events = _every_event(imported, name)
    (user,) = _of(events, UserMessage)
    assert user.content.startswith("finish up the users work by rigging up the chatbot-ui to use lmstudio")
    assert next(_of(events, SystemContext)).content.startswith("<environment_context>")
    reasoning = list(_of(events, Reasoning))
    assert len(reasoning) == 38 and all(r.encrypted and r.encrypted.startswith("gAAAAA") for r in reasoning)
    assert reasoning[0].summary == ["**Planning repository inspection**"]
    shell = next(c for c in _of(events, ToolCall) if c.name == "shell")
    assert shell.input["command"] == ["bash", "-lc", "ls"]
    result = next(r for r in _of(events, ToolResult) if r.tool_use_id == shell.id)
    assert (
        "README.md" in result.content
        and not result.is_error
        and result.meta == {"metadata": {"exit_code": 0, "duration_seconds": 0.0}}
    )
    assert imported.store.metadata(imported.session_id(name))["git"]["branch"] == "main"


def test_pi_conversation_and_compactions(imported: Imported) -> None:
    name = "pi/before-compaction.jsonl"
    events = _every_event(imported, name)
    assert next(_of(events, UserMessage)).content.startswith("alright, read @packages/coding-agent/src/main.ts")
    compactions = list(_of(events, Compaction))
    assert [c.tokens_before for c in compactions] == [175004, 185014]
    assert compactions[0].summary.startswith("# Context Checkpoint: Coding Agent Refactoring")
    assert {"bash", "edit", "read", "write"} <= {c.name for c in _of(events, ToolCall)}
    assert any(r.meta and r.meta.get("details") for r in _of(events, ToolResult))
    text = next(_of(events, Text))
    assert text.meta is not None and text.meta["model"] == "claude-opus-4-5" and text.meta["cost"]["total"] > 0
    assert any(r.text and r.signature for r in _of(events, Reasoning))
    assert next(o.command for o in _of(events, OutOfBandOutput)) == "ls"
    stored = imported.store.get_session(imported.session_id(name))
    assert stored is not None
    resumed = SessionManager.resume(imported.store, stored, from_compaction=True)
    assert resumed.events[0] == compactions[1]


def test_pi_v3_tree(imported: Imported) -> None:
    name = "pi/kvsankar-session-01-v3.jsonl"
    tree = imported.store.load_tree(imported.session_id(name))
    assert [e.id for e in tree.events] == ["line-1", "13b3bc17", "7265100e", "4e3d2034", "e2e044ff", "65697c71"]
    assert tree.parent_of["13b3bc17"] == "line-1"  # the header, which has no place in pi's tree, comes first
    assert tree.heads == ["65697c71"]
    events = _every_event(imported, name)
    assert [type(e) for e in events] == [UserMessage, Text]
    assert events[1].meta is not None and events[1].meta["model"] == "gpt-5.5"
