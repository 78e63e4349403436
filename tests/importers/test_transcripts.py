"""Every real transcript: lossless round trip, source times, a clean verify, a resume, and idempotent imports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sessions import LocalSessionService, SessionManager, Text, UnknownEvent, UserMessage, importers
from sessions.events import EVENT_TYPES as STANDARD_TAGS
from sessions.events import standard_events
from sessions.importers import ExportRefused
from sessions.importers._source import parse_time
from tests.importers.conftest import FILES, TRANSCRIPTS, Imported, transcript

CODEX = "codex/rollout-2025-11-17T15-30-28-019a93b9-f380-7600-98ff-940e6b99603c.jsonl"


def _source_lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _parsed(data: bytes) -> list[Any]:
    return [json.loads(line) for line in data.splitlines()]


def test_every_transcript_is_tested() -> None:
    on_disk = sorted(str(p.relative_to(TRANSCRIPTS)) for p in TRANSCRIPTS.rglob("*.jsonl"))
    assert on_disk, f"no transcripts in {TRANSCRIPTS}"
    assert on_disk == sorted(name for _, name in FILES)


@pytest.mark.parametrize(("fmt", "name"), FILES)
def test_export_gives_back_the_source_line_for_line(imported: Imported, fmt: str, name: str) -> None:
    source = transcript(name)
    exported = importers.export_session(imported.store, imported.session_id(name), fmt)
    assert [json.loads(line) for line in exported.decode().splitlines()] == _source_lines(source)
    # Byte for byte, too, but for non-ASCII characters, which the log keeps as \u escapes.
    ours, theirs = exported.splitlines(), source.read_bytes().splitlines()
    assert len(ours) == len(theirs)
    assert all(a == b for a, b in zip(ours, theirs, strict=True) if b.isascii())
    assert any(not b.isascii() for b in theirs) or exported == source.read_bytes()


@pytest.mark.parametrize(("fmt", "name"), FILES)
def test_verifies_clean_with_every_event_typed(imported: Imported, fmt: str, name: str) -> None:
    report = imported.store.verify(imported.session_id(name))
    assert report.ok
    assert report.findings == []
    assert report.unknown_types == {}
    assert report.events == len(_source_lines(transcript(name)))


@pytest.mark.parametrize(("fmt", "name"), FILES)
def test_times_are_the_sources(imported: Imported, fmt: str, name: str) -> None:
    session_id = imported.session_id(name)
    lines = _source_lines(transcript(name))
    events = imported.store.load_tree(session_id).events
    stamped = [(e.created_at, parse_time(line.get("timestamp"))) for e, line in zip(events, lines, strict=True)]
    assert all(ours == theirs for ours, theirs in stamped if theirs is not None)
    stored = imported.store.get_session(session_id)
    assert stored is not None
    assert stored.updated_at == events[-1].created_at  # the head is the source's last line
    assert stored.updated_at.year < 2027 and stored.created_at <= stored.updated_at
    # An old import is never offered as the session to continue.
    assert imported.store.find_resumable(stored.directory, None, 3600) is None


@pytest.mark.parametrize(("fmt", "name"), FILES)
def test_resumes_to_the_active_branch_mapped_to_a_conversation(imported: Imported, fmt: str, name: str) -> None:
    session_id = imported.session_id(name)
    stored = imported.store.get_session(session_id)
    assert stored is not None
    resumed = SessionManager.resume(imported.store, stored)
    tree = imported.store.load_tree(session_id)
    assert [imported.store.deserialize_event(e.event_type, e.event_data) for e in tree.branch()] == resumed.events
    assert not any(isinstance(e, UnknownEvent) for e in resumed.events)
    conversation = standard_events(resumed.events)
    assert any(isinstance(e, UserMessage | Text) for e in conversation)
    assert all(type(e).TYPE in STANDARD_TAGS for e in conversation)


def test_importing_twice_creates_nothing_new(tmp_path: Path) -> None:
    store = LocalSessionService.open(tmp_path, durability="flush", event_types=importers.EVENT_TYPES)
    first = importers.import_claude_code(store, TRANSCRIPTS / "claude-code")
    logs = {p.name: p.read_bytes() for p in (tmp_path / "sessions").iterdir()}
    again = importers.import_claude_code(store, TRANSCRIPTS / "claude-code")
    assert [r.status for r in first] == ["imported"] * 5
    assert [r.status for r in again] == ["exists"] * 5
    assert [r.session_id for r in again] == [r.session_id for r in first]
    assert {p.name: p.read_bytes() for p in (tmp_path / "sessions").iterdir()} == logs


def test_events_appended_after_an_import_are_refused_by_the_tools_format(tmp_path: Path) -> None:
    store = LocalSessionService.open(tmp_path, durability="flush", event_types=importers.EVENT_TYPES)
    (result,) = importers.import_pi(store, transcript("pi/kvsankar-session-01-v3.jsonl"))
    stored = store.get_session(result.session_id)
    assert stored is not None
    resumed = SessionManager.resume(store, stored)
    resumed.manager.persist_events([*resumed.events, UserMessage("and now?")])
    with pytest.raises(ExportRefused, match=r"user_message\) is not a line imported from pi"):
        importers.export_session(store, result.session_id, "pi")
    with pytest.raises(ExportRefused, match="not a line imported from codex"):
        importers.export_session(store, result.session_id, "codex")


def test_a_store_without_the_importer_types_keeps_the_records_byte_for_byte(tmp_path: Path) -> None:
    store = LocalSessionService.open(tmp_path, durability="flush", event_types=importers.EVENT_TYPES)
    source = transcript(CODEX)
    (result,) = importers.import_codex(store, source)
    before = store.log_path(result.session_id).read_bytes()
    plain = LocalSessionService.open(tmp_path, durability="flush")
    stored = plain.get_session(result.session_id)
    assert stored is not None
    assert _parsed(importers.export_session(plain, result.session_id, "codex")) == _source_lines(source)
    resumed = SessionManager.resume(plain, stored)
    assert {e.type for e in resumed.events if isinstance(e, UnknownEvent)} == {"codex"}
    resumed.manager.persist_events([*resumed.events, Text("after")])
    assert plain.log_path(result.session_id).read_bytes().startswith(before)
    assert plain.verify(result.session_id).unknown_types == {"codex": 279}
