"""Property tests: any Claude Code-shaped file (any tree, lines outside it anywhere, any JSON) imports losslessly
and keeps its tree; the importer's records survive, byte for byte, a store that does not know them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessions import LocalSessionService, SessionManager, Text, UnknownEvent, importers, transfer

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def _claude_file(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Lines with a uuid (a parent: none, an earlier line, or one not in the file) and lines without one."""
    lines: list[dict[str, Any]] = []
    uuids: list[str] = []
    for n in range(draw(st.integers(1, 25))):
        line: dict[str, Any] = {"type": draw(st.sampled_from(["user", "assistant", "progress", "system"]))}
        if draw(st.booleans()):
            line["uuid"] = f"u{n}"
            line["parentUuid"] = draw(st.none() | st.sampled_from([*uuids, "elsewhere"]) if uuids else st.none())
            uuids.append(line["uuid"])
        else:
            line["type"] = draw(st.sampled_from(["file-history-snapshot", "queue-operation", "summary"]))
        if draw(st.booleans()):
            line["timestamp"] = f"2025-01-01T00:00:{n:02d}.000Z"
        line["data"] = draw(_json)
        lines.append(line)
    return lines


def _parsed(data: bytes) -> list[Any]:
    return [json.loads(line) for line in data.splitlines()]


def _write(path: Path, lines: list[dict[str, Any]]) -> None:
    data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
    path.write_bytes(data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=_claude_file())
def test_any_claude_code_file_round_trips_with_its_tree(
    tmp_path_factory: pytest.TempPathFactory, lines: list[dict[str, Any]]
) -> None:
    folder = tmp_path_factory.mktemp("claude")
    _write(folder / "s1.jsonl", lines)
    store = LocalSessionService.open(folder / "store", durability="flush", event_types=importers.EVENT_TYPES)
    (result,) = importers.import_claude_code(store, folder / "s1.jsonl")
    assert _parsed(importers.export_session(store, result.session_id, "claude-code")) == lines
    assert store.log_path(result.session_id).read_bytes().isascii()  # non-ASCII kept as \u escapes
    report = store.verify(result.session_id)
    assert report.ok and report.findings == [] and report.unknown_types == {}

    tree = store.load_tree(result.session_id)
    uuids = {line["uuid"] for line in lines if "uuid" in line}
    for event, line in zip(tree.events, lines, strict=True):
        if "uuid" in line:
            linked = event.parent_id
            while linked is not None and linked.startswith("line-"):
                linked = tree.parent_of[linked]
            assert linked == (line["parentUuid"] if line["parentUuid"] in uuids else None)
    # Lines outside the source's tree never add a branch: the leaves are the source's (where it has lines).
    if uuids:
        assert len(tree.heads) == len(uuids - {line.get("parentUuid") for line in lines})
    assert tree.active_head == lines[-1].get("uuid", f"line-{len(lines)}")
    assert importers.import_claude_code(store, folder / "s1.jsonl")[0].status == "exists"


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=_claude_file())
def test_records_survive_a_store_that_does_not_know_them(
    tmp_path_factory: pytest.TempPathFactory, lines: list[dict[str, Any]]
) -> None:
    folder = tmp_path_factory.mktemp("claude")
    _write(folder / "s1.jsonl", lines)
    typed = LocalSessionService.open(folder / "store", durability="flush", event_types=importers.EVENT_TYPES)
    (result,) = importers.import_claude_code(typed, folder / "s1.jsonl")
    log = transfer.export_session(typed, result.session_id, "jsonl")

    plain = LocalSessionService.open(folder / "store", durability="flush")
    stored = plain.get_session(result.session_id)
    assert stored is not None
    resumed = SessionManager.resume(plain, stored)
    assert all(isinstance(e, UnknownEvent) and e.type == "claude_code" for e in resumed.events)
    assert _parsed(importers.export_session(plain, result.session_id, "claude-code")) == lines
    resumed.manager.persist_events([*resumed.events, Text("after")])
    assert transfer.export_session(plain, result.session_id, "jsonl").startswith(log)
