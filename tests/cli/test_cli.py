"""The ``sessions`` command, run as the installed console script against a temporary store."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import filelock
import pytest

from sessions import Compaction, LocalSessionService, SessionManager, Text, ToolCall, ToolResult, UserMessage, transfer
from sessions.cli.render import time_ago
from tests.conftest import SessionsCLI

ID_A = "11111111-1111-7111-8111-111111111111"
ID_B = "11111111-2222-7222-8222-222222222222"


def make_session(store: Path, directory: str = "/projects/demo", git_root: str | None = None) -> str:
    """A session with one user turn and one tool round trip, written through the library."""
    with LocalSessionService.open(store) as service:
        manager = SessionManager.create_new(service, directory, git_root)
        manager.persist_events(
            [
                UserMessage("list the files"),
                ToolCall("toolu_1", "shell", {"command": "ls"}),
                ToolResult("toolu_1", "README.md\n", False),
                Text("There is one file: README.md."),
            ]
        )
        manager.persist_server_session_id("server-1")
        return manager.session_id


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr


def test_help_documents_store_and_exit_codes(sessions_cli: SessionsCLI) -> None:
    result = sessions_cli("--help")
    assert result.returncode == 0
    for needle in ("SESSIONS_STORE", "--store", "exit codes", "verify found damage", "list", "doctor", "chat"):
        assert needle in result.stdout
    for command in ("list", "show", "verify", "archive", "unarchive", "export", "import", "reindex", "doctor", "chat"):
        sub = sessions_cli(command, "--help")
        assert sub.returncode == 0, sub.stderr
        assert f"sessions {command}" in sub.stdout


def test_python_dash_m_runs_the_same_command(sessions_cli: SessionsCLI, tmp_path: Path) -> None:
    make_session(sessions_cli.store)
    result = subprocess.run(
        [sys.executable, "-m", "sessions", "list", "--json"],
        capture_output=True,
        text=True,
        env=sessions_cli.env(),
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == sessions_cli("list", "--json").stdout


def test_list_table_and_json(sessions_cli: SessionsCLI) -> None:
    first = make_session(sessions_cli.store, "/projects/one")
    second = make_session(sessions_cli.store, "/projects/two", git_root="/projects")
    with LocalSessionService.open(sessions_cli.store) as service:
        service.archive(first)

    table = sessions_cli("list")
    assert table.returncode == 0, table.stderr
    assert second[-12:-6] in table.stdout and "/projects/two" in table.stdout  # short ids
    assert first[-12:-6] not in table.stdout
    assert "\x1b[" not in table.stdout  # plain when not a terminal
    row = next(line for line in table.stdout.splitlines() if second[-12:-6] in line)
    assert row.split() == [second[-12:-6], "list", "the", "files", "now", "4", "/projects/two"]

    everything = json.loads(sessions_cli("list", "--all", "--json").stdout)
    assert [s["id"] for s in everything] == [second, first]
    assert everything[0]["event_count"] == 4
    assert everything[0]["server_session_id"] == "server-1"
    assert everything[1]["archived_at"] is not None

    by_dir = json.loads(sessions_cli("list", "--all", "--json", "--dir", "/projects/one").stdout)
    assert [s["id"] for s in by_dir] == [first]
    by_git_root = json.loads(sessions_cli("list", "--json", "--dir", "/projects").stdout)
    assert [s["id"] for s in by_git_root] == [second]


def test_list_without_a_store_says_so(sessions_cli: SessionsCLI) -> None:
    result = sessions_cli("list")
    assert result.returncode == 0
    assert "No sessions yet" in result.stdout
    assert not sessions_cli.store.exists()  # listing creates nothing
    assert json.loads(sessions_cli("list", "--json").stdout) == []


def test_show_by_prefix_renders_the_conversation(sessions_cli: SessionsCLI) -> None:
    session_id = make_session(sessions_cli.store)
    result = sessions_cli("show", session_id[:13])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"Session {session_id}" in out
    assert "server id:   server-1" in out
    order = [out.index(s) for s in ("you> list the files", "tool call shell", "README.md", "assistant> There is one")]
    assert order == sorted(order)


def test_show_marks_a_compaction_and_keeps_what_came_before(sessions_cli: SessionsCLI) -> None:
    with LocalSessionService.open(sessions_cli.store) as service:
        manager = SessionManager.create_new(service, "/projects/long", None)
        manager.persist_events(
            [
                UserMessage("an old question"),
                Compaction(summary="We looked at the build and fixed it.", tokens_before=1200),
                UserMessage("a new question"),
            ]
        )
    result = sessions_cli("show", manager.session_id)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "compaction of 1200 tokens" in out and "We looked at the build and fixed it." in out
    assert out.index("an old question") < out.index("compaction") < out.index("a new question")
    tail = sessions_cli("show", manager.session_id, "--tail", "2")
    assert "an old question" not in tail.stdout and "compaction of 1200 tokens" in tail.stdout


def test_show_raw_is_the_log_and_json_has_every_event(sessions_cli: SessionsCLI) -> None:
    session_id = make_session(sessions_cli.store)
    log = sessions_cli.store / "sessions" / f"{session_id}.jsonl"
    raw = subprocess.run(
        [str(sessions_cli.executable), "show", session_id, "--raw"],
        capture_output=True,
        env=sessions_cli.env(),
        check=True,
        timeout=120,
    )
    assert raw.stdout == log.read_bytes()
    document = json.loads(sessions_cli("show", session_id, "--json").stdout)
    assert document["session"]["id"] == session_id
    assert [e["type"] for e in document["events"]] == ["user_message", "tool_call", "tool_result", "text"]
    assert document["events"][1]["data"] == {"id": "toolu_1", "name": "shell", "input": {"command": "ls"}}
    # --json uses the names of the log's own lines, as --raw prints them.
    raw_lines = [json.loads(line) for line in raw.stdout.splitlines()]
    raw_events = [line for line in raw_lines if line["k"] == "event"]
    for shown, stored in zip(document["events"], raw_events, strict=True):
        assert {k: shown[k] for k in ("id", "parent", "inv", "type", "data")} == {
            k: stored.get(k)
            for k in ("id", "parent", "inv", "type", "data")  # the log leaves out a null parent
        }
        assert shown["ts"].rstrip("Z") == stored["ts"].rstrip("Z")
    assert document["events"][1]["parent"] == document["events"][0]["id"]
    assert document["metadata"] == {}


def test_show_json_carries_metadata_as_json_values(sessions_cli: SessionsCLI) -> None:
    session_id = chat_like_session(sessions_cli.store)
    document = json.loads(sessions_cli("show", session_id, "--json").stdout)
    assert document["metadata"] == {"edit_permissions": {"allowed_commands": ["ls"]}, "title": "plain text"}
    exported = json.loads(sessions_cli("export", session_id, "--format", "json").stdout)
    assert exported["metadata"] == document["metadata"] and exported["events"] == document["events"]


def chat_like_session(store: Path) -> str:
    with LocalSessionService.open(store) as service:
        manager = SessionManager.create_new(service, "/projects/meta", None)
        manager.persist_events([UserMessage("hi")])
        manager.set_metadata("edit_permissions", '{"allowed_commands": ["ls"]}')
        manager.set_metadata("title", "plain text")
        return manager.session_id


def test_unknown_and_ambiguous_ids_are_one_line_errors(sessions_cli: SessionsCLI) -> None:
    with LocalSessionService.open(sessions_cli.store) as service:
        service.create_session(ID_A, "/a", None)
        service.create_session(ID_B, "/b", None)
    assert_one_line_error(sessions_cli("show", "ffff"), "no session 'ffff'", str(sessions_cli.store))
    assert_one_line_error(sessions_cli("show", "11111111"), "matches 2 sessions", ID_A, ID_B)
    assert_one_line_error(sessions_cli("archive", "abc"), "no session 'abc'")
    assert sessions_cli("show", "11111111-2").returncode == 0  # unique prefix
    assert sessions_cli("show", ID_A.upper()).returncode == 0  # ids are matched case-insensitively


def test_bad_flag_and_bad_store_are_one_line_errors(sessions_cli: SessionsCLI, tmp_path: Path) -> None:
    assert_one_line_error(sessions_cli("list", "--bogus"), "unrecognized arguments: --bogus")
    assert_one_line_error(sessions_cli("export", ID_A, "--format", "pdf"), "invalid choice")
    assert_one_line_error(sessions_cli("chat", "--max-age", "-1"), "is not a number of minutes (0 or more)")
    assert_one_line_error(sessions_cli("show", ID_A), "no session store at", "SESSIONS_STORE")
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    assert_one_line_error(sessions_cli("show", ID_A, "--store", not_a_folder), "is not a folder")
    assert not_a_folder.read_text() == "x"


def test_store_option_beats_the_environment_variable(sessions_cli: SessionsCLI, tmp_path: Path) -> None:
    other = tmp_path / "other"
    session_id = make_session(other)
    assert session_id not in sessions_cli("list", "--json").stdout
    assert session_id in sessions_cli("--store", other, "list", "--json").stdout
    assert session_id in sessions_cli("list", "--json", "--store", other).stdout


@pytest.mark.skipif(sys.platform != "linux", reason="platformdirs honours XDG_DATA_HOME on Linux only")
def test_default_store_is_the_user_data_folder(sessions_cli: SessionsCLI, tmp_path: Path) -> None:
    data_home = tmp_path / "xdg"
    session_id = make_session(data_home / "jsonl-sessions")
    result = sessions_cli("list", "--json", env={"SESSIONS_STORE": "", "XDG_DATA_HOME": str(data_home)})
    assert result.returncode == 0, result.stderr
    assert session_id in result.stdout


def test_verify_reports_damage_with_byte_offsets(sessions_cli: SessionsCLI) -> None:
    clean = make_session(sessions_cli.store)
    damaged = make_session(sessions_cli.store)
    log = sessions_cli.store / "sessions" / f"{damaged}.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    garbage_offset = sum(map(len, lines[:2]))
    log.write_bytes(b"".join([*lines[:2], b'{"k":"event", not json\n', *lines[2:]]) + b'{"k":"ev')
    torn_offset = log.stat().st_size - len(b'{"k":"ev')

    ok = sessions_cli("verify", clean)
    assert ok.returncode == 0, ok.stdout
    assert f"{clean}: ok, 4 events" in ok.stdout

    bad = sessions_cli("verify", damaged[:18])
    assert bad.returncode == 1
    assert f"{damaged}: DAMAGED" in bad.stdout
    assert f"byte {garbage_offset}: damaged:" in bad.stdout
    assert f"byte {torn_offset}: torn_tail:" in bad.stdout

    every = sessions_cli("verify", "--all", "--json")
    assert every.returncode == 1
    reports = {r["session_id"]: r for r in json.loads(every.stdout)}
    assert reports[clean]["ok"] is True
    assert reports[damaged]["ok"] is False
    assert [(f["offset"], f["kind"]) for f in reports[damaged]["findings"]] == [
        (garbage_offset, "damaged"),
        (torn_offset, "torn_tail"),
    ]
    summary = sessions_cli("verify", "--all")
    assert "2 session(s) checked, 1 damaged" in summary.stdout
    assert_one_line_error(sessions_cli("verify"), "one of the arguments")


def test_verify_reports_unknown_event_types_without_calling_them_damage(sessions_cli: SessionsCLI) -> None:
    session_id = make_session(sessions_cli.store)
    with LocalSessionService.open(sessions_cli.store) as service:
        head = service.get_session(session_id)
        assert head is not None
        service.append_event(session_id, "future-1", head.head_id, "inv", "hologram", '{"x":1}')
    result = sessions_cli("verify", session_id)
    assert result.returncode == 0
    assert "unknown_type: event type 'hologram' is unknown to this version" in result.stdout


def test_export_import_round_trip_is_byte_for_byte(sessions_cli: SessionsCLI, tmp_path: Path) -> None:
    session_id = make_session(sessions_cli.store)
    exported = tmp_path / "session.jsonl"
    result = sessions_cli("export", session_id[:10], "--format", "jsonl", "-o", exported)
    assert result.returncode == 0, result.stderr
    assert exported.read_bytes() == (sessions_cli.store / "sessions" / f"{session_id}.jsonl").read_bytes()

    elsewhere = tmp_path / "elsewhere"
    imported = sessions_cli("import", exported, "--store", elsewhere)
    assert imported.returncode == 0, imported.stderr
    assert session_id in imported.stdout
    assert (elsewhere / "sessions" / f"{session_id}.jsonl").read_bytes() == exported.read_bytes()
    assert sessions_cli("show", session_id, "--store", elsewhere).stdout == sessions_cli("show", session_id).stdout

    log = sessions_cli.store / "sessions" / f"{session_id}.jsonl"
    before = log.read_bytes()
    again = sessions_cli("import", exported)  # the same copy: merged, and nothing changes
    assert again.returncode == 0, again.stderr
    assert f"session {session_id} already holds every event" in again.stdout
    assert log.read_bytes() == before
    assert sorted(p.name for p in (sessions_cli.store / "sessions").iterdir()) == [f"{session_id}.jsonl"]

    refused_overwrite = sessions_cli("export", session_id, "-o", exported)
    assert_one_line_error(refused_overwrite, f"{exported} exists; nothing was written (--force overwrites it)")


def test_import_checks_the_whole_file_before_writing(sessions_cli: SessionsCLI, tmp_path: Path) -> None:
    session_id = make_session(tmp_path / "source")
    good = (tmp_path / "source" / "sessions" / f"{session_id}.jsonl").read_bytes()
    cases = {
        "torn.jsonl": (good + b'{"k":"fact"', "damaged line"),
        "middle.jsonl": (good.replace(b"\n", b"\nnot json\n", 2), "damaged line"),
        "headless.jsonl": (b"\n".join(good.splitlines()[1:]) + b"\n", "does not start with a session header"),
        "export.json": (b'{\n  "session": {}\n}\n', "is not a session log"),
        "empty.jsonl": (b"", "is empty"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert_one_line_error(sessions_cli("import", path), message, str(path))
    sessions_dir = sessions_cli.store / "sessions"
    assert not sessions_dir.exists() or list(sessions_dir.iterdir()) == []
    assert_one_line_error(sessions_cli("import", tmp_path / "missing.jsonl"), "is not a file")


def test_export_for_people(sessions_cli: SessionsCLI) -> None:
    session_id = make_session(sessions_cli.store)
    markdown = sessions_cli("export", session_id, "--format", "markdown").stdout
    assert markdown.startswith(f"# Session {session_id}\n")
    assert "## You (" in markdown and "list the files" in markdown
    assert "**Tool call** `shell` (`toolu_1`)" in markdown
    assert "## Assistant (" in markdown and "There is one file: README.md." in markdown
    document = json.loads(sessions_cli("export", session_id, "--format", "json").stdout)
    assert document["events"][0]["data"] == {"content": "list the files"}


def test_archive_and_unarchive(sessions_cli: SessionsCLI) -> None:
    session_id = make_session(sessions_cli.store)
    assert sessions_cli("archive", session_id[:12]).stdout == f"archived {session_id}\n"
    assert json.loads(sessions_cli("list", "--json").stdout) == []
    assert json.loads(sessions_cli("list", "--all", "--json").stdout)[0]["archived_at"] is not None
    assert sessions_cli("unarchive", session_id[:12]).returncode == 0
    assert [s["id"] for s in json.loads(sessions_cli("list", "--json").stdout)] == [session_id]


def _indexed_ids(index: Path) -> set[str]:
    """The session ids with a row in a saved ``index.jsonl`` (one row a line)."""
    return {json.loads(line)["session"]["id"] for line in index.read_bytes().splitlines()}


def test_reindex_after_deleting_the_index(sessions_cli: SessionsCLI) -> None:
    ids = {make_session(sessions_cli.store, f"/p/{n}") for n in range(3)}
    index = sessions_cli.store / "index.jsonl"
    before = json.loads(sessions_cli("list", "--json").stdout)
    assert index.exists()
    index.unlink()
    result = sessions_cli("reindex")
    assert result.returncode == 0, result.stderr
    assert "from 3 session log(s)" in result.stdout
    assert _indexed_ids(index) == ids
    assert json.loads(sessions_cli("list", "--json").stdout) == before


def test_reindex_replaces_a_corrupt_index(sessions_cli: SessionsCLI) -> None:
    session_id = make_session(sessions_cli.store)
    index = sessions_cli.store / "index.jsonl"
    index.write_text('{"session": {"not": "valid"')
    assert sessions_cli("reindex").returncode == 0
    assert _indexed_ids(index) == {session_id}


def test_doctor_repairs_torn_tails_and_dry_run_changes_nothing(sessions_cli: SessionsCLI) -> None:
    session_id = make_session(sessions_cli.store)
    log = sessions_cli.store / "sessions" / f"{session_id}.jsonl"
    good = log.read_bytes()
    log.write_bytes(good + b'{"k":"event","id":"cut-')
    (sessions_cli.store / "index.jsonl").unlink()

    dry = sessions_cli("doctor", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"{session_id}: would cut a torn tail of 23 bytes" in dry.stdout
    assert "dry run: nothing was changed" in dry.stdout
    assert log.read_bytes() == good + b'{"k":"event","id":"cut-'
    assert not (sessions_cli.store / "index.jsonl").exists()
    assert not (sessions_cli.store / "trash").exists()

    fixed = sessions_cli("doctor")
    assert fixed.returncode == 0, fixed.stderr
    assert f"{session_id}: cut a torn tail of 23 bytes" in fixed.stdout
    assert "from 1 session logs (it was missing or unreadable)" in fixed.stdout
    assert log.read_bytes() == good
    (kept,) = (sessions_cli.store / "trash").iterdir()
    assert kept.read_bytes() == b'{"k":"event","id":"cut-'
    assert (sessions_cli.store / "index.jsonl").exists()
    assert sessions_cli("verify", "--all").returncode == 0

    again = sessions_cli("doctor")
    assert "repair torn tails:\n  nothing to do" in again.stdout
    assert "from 1 session logs; it was already up to date" in again.stdout

    index = sessions_cli.store / "index.jsonl"
    (row,) = [json.loads(line) for line in index.read_bytes().splitlines()]
    ghost = {**row, "session": {**row["session"], "id": "00000000-0000-7000-8000-000000000000"}}
    lying = {**row, "log": {**row["log"], "size": row["log"]["size"] - 1}}
    index.write_text(json.dumps(ghost) + "\n" + json.dumps(lying) + "\n")
    refreshed = sessions_cli("doctor")
    assert "from 1 session logs: 0 added, 1 dropped, 1 brought up to date" in refreshed.stdout


def test_time_ago_reads_like_the_reference() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    cases = {0: "just now", 44: "just now", 60: "1 minute ago", 3 * 60 + 20: "3 minutes ago"}
    cases |= {3600: "1 hour ago", 5 * 3600 + 59 * 60: "5 hours ago", 86400: "1 day ago", 9 * 86400: "9 days ago"}
    for seconds, text in cases.items():
        assert time_ago(now - dt.timedelta(seconds=seconds), now) == text


def run_on_a_terminal(cli: SessionsCLI, *args: str, env: dict[str, str]) -> bytes:
    """Run the command with a pseudo-terminal as its standard output; returns what it wrote."""
    primary, secondary = os.openpty()
    with subprocess.Popen(
        [str(cli.executable), *args],
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
        cwd=cli.cwd,
        env=cli.env(env),
    ) as process:
        os.close(secondary)
        out = b""
        try:
            while True:
                try:
                    chunk = os.read(primary, 4096)
                except OSError:  # Linux reports EIO once the command has exited
                    break
                if not chunk:
                    break
                out += chunk
            assert process.wait(timeout=60) == 0, out
        finally:
            if process.poll() is None:
                process.kill()
            os.close(primary)
    return out


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_colours_on_a_terminal_only_and_never_with_no_color(sessions_cli: SessionsCLI) -> None:
    session_id = make_session(sessions_cli.store)
    coloured = run_on_a_terminal(
        sessions_cli, "show", session_id, "--no-pager", env={"TERM": "xterm-256color", "NO_COLOR": ""}
    )
    plain = run_on_a_terminal(
        sessions_cli, "show", session_id, "--no-pager", env={"TERM": "xterm-256color", "NO_COLOR": "1"}
    )
    assert b"\x1b[" in coloured
    assert b"\x1b[" not in plain
    assert b"you> list the files" in plain
    table = run_on_a_terminal(sessions_cli, "list", env={"TERM": "xterm-256color", "NO_COLOR": "1"})
    assert session_id[-12:-6].encode() in table
    assert "─".encode() in table  # the table has rules on a terminal, none when piped
    assert "─" not in sessions_cli("list").stdout


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_progress_bar_on_a_terminal_only(sessions_cli: SessionsCLI) -> None:
    for n in range(3):
        make_session(sessions_cli.store, f"/p/{n}")
    on_terminal = run_on_a_terminal(sessions_cli, "verify", "--all", env={"TERM": "xterm-256color"})
    assert b"Verifying" in on_terminal and b"100%" in on_terminal
    assert b"3 session(s) checked, 0 damaged" in on_terminal
    piped = sessions_cli("verify", "--all")
    assert "Verifying" not in piped.stdout + piped.stderr and "%" not in piped.stdout + piped.stderr
    assert "Rebuilding index" in run_on_a_terminal(sessions_cli, "reindex", env={"TERM": "xterm"}).decode()


def test_a_busy_session_fails_with_exit_code_3_and_changes_nothing(sessions_cli: SessionsCLI) -> None:
    session_id = make_session(sessions_cli.store)
    log = sessions_cli.store / "sessions" / f"{session_id}.jsonl"
    before = log.read_bytes()
    # Hold the session's real lock, as a writer in another process would.
    with filelock.FileLock(sessions_cli.store / "locks" / f"{session_id}.lock"):
        result = sessions_cli("archive", session_id)
    assert result.returncode == 3
    assert result.stderr.startswith(f"sessions: error: session {session_id} is busy")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert log.read_bytes() == before


@pytest.mark.parametrize("how", [("--raw",), ()], ids=["raw", "rendered"])
def test_a_reader_that_goes_away_gets_no_traceback(sessions_cli: SessionsCLI, how: tuple[str, ...]) -> None:
    with LocalSessionService.open(sessions_cli.store, durability="flush") as service:
        manager = SessionManager.create_new(service, "/big", None)
        manager.persist_events([UserMessage("x" * 500) for _ in range(1000)])  # far more than a pipe holds
    with subprocess.Popen(
        [str(sessions_cli.executable), "show", manager.session_id, *how],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=sessions_cli.env(),
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.read(10)
        process.stdout.close()  # as `| head -c 10` does
        err = process.stderr.read().decode()
        code = process.wait(timeout=60)
    # rich exits 1 on a broken pipe; a raw write may instead end on a short write the kernel reports as success.
    assert code in (0, 1), err
    assert err == ""


def test_import_without_hard_links_still_never_overwrites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On FAT, exFAT and some network mounts link() fails; import then creates the log exclusively."""
    session_id = make_session(tmp_path / "source")
    exported = tmp_path / "source" / "sessions" / f"{session_id}.jsonl"

    def no_hard_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_hard_links)
    with LocalSessionService.open(tmp_path / "target") as target:
        assert transfer.import_session(target, exported) == session_id
        assert target.log_path(session_id).read_bytes() == exported.read_bytes()
        assert [p.name for p in target.sessions_dir.iterdir()] == [f"{session_id}.jsonl"]  # no staging file left
        again = transfer.import_log(target, exported.read_bytes(), "again")  # merged: nothing new
        assert (again.merged, again.added_events) == (True, 0)
        assert target.log_path(session_id).read_bytes() == exported.read_bytes()
        session = target.get_session(session_id)
        assert session is not None and session.event_count == 4
