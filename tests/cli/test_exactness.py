"""What `list`, `search` and the write commands promise, held to the letter (the review of the command's round 4):
short ids of application ids, search over content only, case folding beyond ASCII, and a closed pipe."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sessions import LocalSessionService, SessionManager, ToolCall, ToolResult, UserMessage, shortid
from tests.conftest import SessionsCLI

CLAUDE_SESSION = "4d5611e5-241a-462a-8d15-5122611a9569"


def claude_lines(session_id: str, said: str, agent: str | None = None) -> list[dict[str, object]]:
    """A small Claude Code session file: a hook's progress line, a user message, a tool call and its result."""
    common: dict[str, object] = {
        "cwd": "/home/someone/projects/spotter-worktrees/spotter-dov",
        "sessionId": session_id,
        "version": "2.1.39",
        "gitBranch": "main",
        "isSidechain": agent is not None,
        **({"agentId": agent} if agent else {}),
    }
    prefix = agent or "main"
    return [
        {
            **common,
            "parentUuid": None,
            "type": "progress",
            "data": {"type": "hook_progress", "hookEvent": "SessionStart", "command": "bd prime"},
            "timestamp": "2026-02-12T16:02:23.545Z",
            "uuid": f"{prefix}-1",
        },
        {
            **common,
            "parentUuid": f"{prefix}-1",
            "type": "user",
            "message": {"role": "user", "content": said},
            "timestamp": "2026-02-12T16:02:24.000Z",
            "uuid": f"{prefix}-2",
        },
        {
            **common,
            "parentUuid": f"{prefix}-2",
            "type": "assistant",
            "message": {
                "id": f"msg-{prefix}",
                "role": "assistant",
                "model": "m",
                "content": [{"type": "tool_use", "id": f"toolu_{prefix}", "name": "Bash", "input": {"command": "ls"}}],
            },
            "timestamp": "2026-02-12T16:02:25.000Z",
            "uuid": f"{prefix}-3",
        },
        {
            **common,
            "parentUuid": f"{prefix}-3",
            "type": "user",
            "message": {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": f"toolu_{prefix}", "content": "README.md\nsrc"}],
            },
            "timestamp": "2026-02-12T16:02:26.000Z",
            "uuid": f"{prefix}-4",
        },
    ]


def write_jsonl(path: Path, lines: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines))


@pytest.fixture
def claude_store(sessions_cli: SessionsCLI, tmp_path: Path) -> SessionsCLI:
    """A store holding one imported Claude Code session and two of its sub-agents (``agent-x``, ``agent-y``)."""
    source = tmp_path / "claude"
    write_jsonl(source / f"{CLAUDE_SESSION}.jsonl", claude_lines(CLAUDE_SESSION, "please look at the bead tracker"))
    for agent in ("x", "y"):
        write_jsonl(
            source / CLAUDE_SESSION / "subagents" / f"agent-{agent}.jsonl",
            claude_lines(CLAUDE_SESSION, f"sub-agent {agent}: count the beads", agent=agent),
        )
    result = sessions_cli("import", "--from", "claude-code", source)
    assert result.returncode == 0, result.stderr
    return sessions_cli


# -- 1. short ids of application ids ---------------------------------------------------------


def test_an_application_id_is_its_own_short_id_and_every_id_cell_is_typed_back(claude_store: SessionsCLI) -> None:
    listed = json.loads(claude_store("list", "--json").stdout)
    agents = sorted(s["id"] for s in listed if ".agent-" in s["id"])
    assert agents == [f"{CLAUDE_SESSION}.agent-x", f"{CLAUDE_SESSION}.agent-y"]
    for session in listed:
        assert "…" not in session["short_id"]
        shown = claude_store("show", session["short_id"], "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["session"]["id"] == session["id"]
    for columns in ("80", "200"):
        table = claude_store("list", env={"COLUMNS": columns})
        assert table.returncode == 0, table.stderr
        lines = table.stdout.splitlines()
        assert all(len(line) <= int(columns) for line in lines), lines
        cells = [line.split()[0] for line in lines[1:]]
        assert len(set(cells)) == len(cells) == 3, cells
        assert all(len(cell) <= shortid.MAX_LENGTH for cell in cells), cells
        for cell in cells:
            shown = claude_store("show", cell, "--json")
            assert shown.returncode == 0, (cell, shown.stderr)


def test_short_ids_of_application_ids_are_whole_and_display_cells_resolve() -> None:
    ids = [
        "019a93b9-f380-7600-98ff-940e6b99603c",
        "my-agent.thread_7",
        "4d5611e5-241a-462a-8d15-5122611a9569.agent-x",
        "4d5611e5-241a-462a-8d15-5122611a9569.agent-y",
        "an-application-chosen-id-that-is-long",
    ]
    short = shortid.short_ids(ids)
    assert short[ids[1]] == ids[1] and short[ids[2]] == ids[2] and short[ids[4]] == ids[4]
    cells = shortid.display_ids(ids)
    assert cells[ids[0]] == "940e6b"
    assert cells[ids[4]].endswith("…") and len(cells[ids[4]]) == shortid.MAX_LENGTH
    # No prefix short enough tells the two sub-agents apart: their start and their end do.
    assert cells[ids[2]] == "4d5611e5-2…x" and cells[ids[3]] == "4d5611e5-2…y"
    for identifier, cell in cells.items():
        assert len(cell) <= shortid.MAX_LENGTH
        assert shortid.resolve(cell, ids) == identifier


# -- 2. search reads content, --type the standard event's type -------------------------------


def test_search_of_imported_sessions_matches_content_not_metadata(claude_store: SessionsCLI) -> None:
    assert claude_store("search", "spotter-worktrees").returncode == 1  # only in each line's cwd
    assert claude_store("search", "^progress$").returncode == 1  # a `type` field
    assert claude_store("search", "bd prime").returncode == 1  # a hook's command: not conversation
    found = claude_store("search", "--type", "user_message", "bead", "--json")
    assert found.returncode == 0, found.stderr
    hits = json.loads(found.stdout)
    assert len(hits) == 3 and {h["type"] for h in hits} == {"user_message"}
    tool = json.loads(claude_store("search", "README", "--json").stdout)
    assert [h["type"] for h in tool] == ["tool_result"] * 3
    assert claude_store("search", "README", "--type", "tool_result").returncode == 0
    assert claude_store("search", "Bash", "--type", "tool_call").returncode == 0
    assert claude_store("search", "README", "--type", "claude_code").returncode == 1


def test_search_of_native_events_matches_the_output_not_the_call_id(sessions_cli: SessionsCLI) -> None:
    with LocalSessionService.open(sessions_cli.store) as service:
        manager = SessionManager.create_new(service, "/p", None)
        manager.persist_events([ToolCall("c1", "shell", {"command": "wc"}), ToolResult("c1", "  42 words", False)])
    hits = json.loads(sessions_cli("search", r"\d+", "--type", "tool_result", "--json").stdout)
    assert len(hits) == 1
    start, end = hits[0]["match"]
    assert hits[0]["snippet"][start:end] == "42"


def test_search_finds_the_text_of_events_of_other_types(sessions_cli: SessionsCLI) -> None:
    """An application's own event types (unknown to the command) are searched through all their text."""
    with LocalSessionService.open(sessions_cli.store) as service:
        manager = SessionManager.create_new(service, "/p", None)
        manager.persist_events([UserMessage("plan it")])
        service.append_event(
            manager.session_id, "e-plan", manager.head_id, "i", "acme.plan", '{"steps":["read the zebra file"]}'
        )
    hits = json.loads(sessions_cli("search", "zebra", "--json").stdout)
    assert [(h["event_id"], h["type"]) for h in hits] == [("e-plan", "acme.plan")]


# -- 3, 4. case folding ----------------------------------------------------------------------


def chat(store: Path, *said: str, directory: str | None = "/p") -> str:
    with LocalSessionService.open(store) as service:
        manager = SessionManager.create_new(service, directory, None)
        manager.persist_events([UserMessage(line) for line in said])
        return manager.session_id


@pytest.mark.parametrize(
    ("said", "pattern"),
    [
        ("BİR PROBLEM VAR", "bir problem"),  # under re.I ASCII i matches İ (U+0130)
        ("k\u0131rm\u0131z\u0131 elma", "KIRMIZI"),  # and the dotless i (U+0131)
        ("the \u212aelvin sign", "kelvin"),
        ("the long \u017fign", "sign"),
    ],
)
def test_ignore_case_finds_what_python_re_finds(sessions_cli: SessionsCLI, said: str, pattern: str) -> None:
    chat(sessions_cli.store, said)
    result = sessions_cli("search", "-i", pattern)
    assert result.returncode == 0, (result.stdout, result.stderr)


def test_a_scoped_ignore_case_group_is_scanned_ignoring_case(sessions_cli: SessionsCLI) -> None:
    chat(sessions_cli.store, "Thread ten is done")
    assert sessions_cli("search", "(?i:THREAD) ten").returncode == 0
    assert sessions_cli("search", "(?i:THREAD) TEN").returncode == 1  # the rest is still case-sensitive


# -- 5. a reader that goes away does not stop a write ------------------------------------------


def read_one_line_then_close(cli: SessionsCLI, *args: str | Path) -> int:
    """Run the command with its output into a pipe that is closed after its first line; its exit code."""
    with subprocess.Popen(
        [str(cli.executable), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli.env()
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline()
        process.stdout.close()
        process.stderr.read()
        return process.wait(timeout=120)


def test_import_into_a_closed_pipe_imports_everything(sessions_cli: SessionsCLI, tmp_path: Path) -> None:
    source = tmp_path / "many"
    count = 120
    for n in range(count):
        session_id = f"00000000-0000-4000-8000-{n:012d}"
        write_jsonl(source / f"{session_id}.jsonl", claude_lines(session_id, f"message {n}"))
    assert read_one_line_then_close(sessions_cli, "import", "--from", "auto", source) == 0
    assert len(json.loads(sessions_cli("list", "--json").stdout)) == count


def test_rm_of_many_sessions_into_a_closed_pipe_deletes_them_all(sessions_cli: SessionsCLI) -> None:
    with LocalSessionService.open(sessions_cli.store) as service:
        ids = []
        for n in range(150):
            manager = SessionManager.create_new(service, "/p" + "/deep" * 20, None)
            manager.persist_events([UserMessage(f"message {n}")])
            ids.append(manager.session_id)
    assert read_one_line_then_close(sessions_cli, "rm", *ids) == 0
    assert json.loads(sessions_cli("list", "--json", "--all").stdout) == []


# -- 6. smaller things -------------------------------------------------------------------------


def test_list_limit_and_recursive_say_what_is_wrong(sessions_cli: SessionsCLI) -> None:
    chat(sessions_cli.store, "hello")
    zero = sessions_cli("list", "--limit", "0")
    assert zero.returncode == 2 and "number of sessions" in zero.stderr and "events" not in zero.stderr
    tail = sessions_cli("show", "x", "--tail", "0")
    assert tail.returncode == 2 and "number of events" in tail.stderr
    for command in ("list", "search"):
        alone = sessions_cli(command, *(["hello"] if command == "search" else []), "-r")
        assert alone.returncode == 2 and "--dir" in alone.stderr, (command, alone.stderr)


def test_folder_header_stays_whole_without_folders(sessions_cli: SessionsCLI) -> None:
    chat(sessions_cli.store, "hello", directory=None)
    lines = sessions_cli("list", env={"COLUMNS": "80"}).stdout.splitlines()
    assert lines[0].split() == ["ID", "Title", "Active", "Events", "Folder"]


def test_search_snippet_collapses_whitespace_runs(sessions_cli: SessionsCLI) -> None:
    chat(sessions_cli.store, "first   line \n\n\t  second\t\tpart   here")
    hits = json.loads(sessions_cli("search", "second", "--json").stdout)
    assert hits[0]["snippet"] == "first line second part here"
    start, end = hits[0]["match"]
    assert hits[0]["snippet"][start:end] == "second"


def test_search_of_a_missing_store_says_so(sessions_cli: SessionsCLI) -> None:
    result = sessions_cli("search", "anything")
    assert result.returncode == 2 and "no session store" in result.stderr


def test_archive_twice_writes_once(sessions_cli: SessionsCLI) -> None:
    session_id = chat(sessions_cli.store, "hello")
    assert sessions_cli("archive", session_id).returncode == 0
    log = sessions_cli.store / "sessions" / f"{session_id}.jsonl"
    before = log.read_bytes()
    first = json.loads(sessions_cli("list", "--json", "--all").stdout)[0]["archived_at"]
    again = sessions_cli("archive", session_id)
    assert again.returncode == 0 and "already archived" in again.stdout
    assert log.read_bytes() == before
    assert json.loads(sessions_cli("list", "--json", "--all").stdout)[0]["archived_at"] == first
    sessions_cli("unarchive", session_id)
    not_archived = sessions_cli("unarchive", session_id)
    assert not_archived.returncode == 0 and "not archived" in not_archived.stdout
