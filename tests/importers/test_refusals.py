"""What the library refuses, and the titles it gives: the same rules as the command, without a subprocess."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sessions import LocalSessionService, importers
from sessions.errors import ImportRefused
from sessions.importers import claude_code
from tests.importers.conftest import SESSIONS, Imported, transcript


def _store(root: Path) -> LocalSessionService:
    return LocalSessionService.open(root, durability="flush", event_types=importers.EVENT_TYPES)


@pytest.mark.parametrize(("fmt", "name"), [("codex", SESSIONS["pi"][0]), ("pi", SESSIONS["claude-code"][1])])
def test_a_file_of_another_tool_is_refused(tmp_path: Path, fmt: str, name: str) -> None:
    store = _store(tmp_path / "store")
    with pytest.raises(ImportRefused, match=r"looks like a .* session file.*--from auto"):
        importers.import_file(store, fmt, transcript(name))
    assert store.list_sessions() == []


def test_an_importer_error_is_a_refusal_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> str | None:
        raise KeyError("agentId")

    monkeypatch.setattr(claude_code, "_task_call", broken)
    path = transcript(SESSIONS["claude-code"][0])
    with pytest.raises(ImportRefused, match=rf"^{re.escape(str(path))}.*KeyError"):
        importers.import_file(_store(tmp_path / "store"), "claude-code", path)


def test_a_subagent_named_by_an_odd_line_still_imports(tmp_path: Path) -> None:
    main = tmp_path / "s.jsonl"
    main.write_text(
        '{"type":"user","sessionId":"s","uuid":"u1","message":"agent-q1","toolUseResult":{"agentId":"q1"}}\n'
        '{"type":"progress","sessionId":"s","uuid":"u2","data":"q1"}\n'
    )
    agents = tmp_path / "s" / "subagents"
    agents.mkdir(parents=True)
    agents.joinpath("agent-q1.jsonl").write_text('{"type":"user","sessionId":"s","agentId":"q1","uuid":"a"}\n')
    results = importers.import_file(_store(tmp_path / "store"), "claude-code", main)
    assert [r.status for r in results] == ["imported", "imported"]


def test_the_title_is_the_first_user_message(imported: Imported) -> None:
    for fmt, names in SESSIONS.items():
        for name in names:
            title = imported.store.metadata(imported.session_id(name)).get("title")
            assert isinstance(title, str) and title and "\n" not in title and len(title) <= 100, (fmt, name, title)
    codex = imported.store.metadata(imported.session_id(SESSIONS["codex"][0]))["title"]
    assert codex.startswith("finish up the users work")
