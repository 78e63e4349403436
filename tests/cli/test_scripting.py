"""Pipes, scripts and exit codes (issue #13, items 5 to 7), through the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from sessions import LocalSessionService, SessionManager, Text, UserMessage
from tests.cli.conftest import read_only_view
from tests.cli.test_cli import assert_one_line_error, make_session
from tests.conftest import SessionsCLI


def shell(cli: SessionsCLI, command: str) -> subprocess.CompletedProcess[str]:
    """Run a shell pipeline with ``$S`` the console script; ``pipefail`` reports the command's own exit code."""
    return subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command}"],
        capture_output=True,
        text=True,
        env={**cli.env(), "S": str(cli.executable)},
        cwd=cli.cwd,
        timeout=120,
        check=False,
    )


def test_version(sessions_cli: SessionsCLI) -> None:
    result = sessions_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("sessions ") and result.stdout.strip().split()[1][0].isdigit()


def test_a_closed_pipe_ends_quietly_with_success(sessions_cli: SessionsCLI) -> None:
    for n in range(40):
        make_session(sessions_cli.store, f"/p/{n}")
    with LocalSessionService.open(sessions_cli.store, durability="flush") as service:
        manager = SessionManager.create_new(service, "/big", None)
        manager.persist_events([UserMessage(f"line {n} " + "x" * 200) for n in range(2000)])
    for command in (
        "$S verify --all | head -2",
        f"$S show {manager.session_id} | head -1",
        f"$S show {manager.session_id} --raw | head -c 10",
        f"$S show {manager.session_id} --json | head -1",
        "$S list | head -1",
        "$S search line | head -1",
    ):
        result = shell(sessions_cli, command)
        assert result.returncode == 0, (command, result.stderr)
        assert result.stderr == "", (command, result.stderr)
        assert result.stdout


def test_verify_quiet_prints_only_problems(sessions_cli: SessionsCLI) -> None:
    good = make_session(sessions_cli.store, "/p/good")
    bad = make_session(sessions_cli.store, "/p/bad")
    quiet = sessions_cli("verify", "--all", "--quiet")
    assert (quiet.returncode, quiet.stdout) == (0, "")
    with open(sessions_cli.store / "sessions" / f"{bad}.jsonl", "ab") as log:
        log.write(b'{"k":"event","id":"torn')
    quiet = sessions_cli("verify", "--all", "-q")
    assert quiet.returncode == 1
    assert bad in quiet.stdout and good not in quiet.stdout
    assert "checked" not in quiet.stdout
    as_json = sessions_cli("verify", "--all", "--quiet", "--json")
    assert as_json.returncode == 1
    assert [r["session_id"] for r in json.loads(as_json.stdout)] == [bad]


def test_export_to_stdout_and_overwrite_only_with_force(sessions_cli: SessionsCLI, tmp_path: Path) -> None:
    session_id = make_session(sessions_cli.store)
    log = (sessions_cli.store / "sessions" / f"{session_id}.jsonl").read_bytes()
    dash = subprocess.run(
        [str(sessions_cli.executable), "export", session_id, "-o", "-"],
        capture_output=True,
        env=sessions_cli.env(),
        cwd=sessions_cli.cwd,
        check=True,
        timeout=120,
    )
    assert dash.stdout == log
    assert not (sessions_cli.cwd / "-").exists()

    target = tmp_path / "out.jsonl"
    target.write_text("keep me")
    refused = sessions_cli("export", session_id, "-o", target)
    assert_one_line_error(refused, "exists", "--force")
    assert target.read_text() == "keep me"
    forced = sessions_cli("export", session_id, "-o", target, "--force")
    assert forced.returncode == 0, forced.stderr
    assert target.read_bytes() == log


def test_import_from_stdin_and_merge_a_newer_copy(sessions_cli: SessionsCLI, tmp_path: Path) -> None:
    source = tmp_path / "source"
    session_id = make_session(source)
    older = (source / "sessions" / f"{session_id}.jsonl").read_bytes()
    piped = shell(sessions_cli, f"$S export {session_id} --store {source} | $S import -")
    assert piped.returncode == 0, piped.stderr
    assert f"imported session {session_id}" in piped.stdout
    assert (sessions_cli.store / "sessions" / f"{session_id}.jsonl").read_bytes() == older

    # The source goes on; here, another turn is added too: the import merges both, as a sync merge does.
    with LocalSessionService.open(source) as service:
        resumed = SessionManager.resume(service, service.get_session(session_id))  # type: ignore[arg-type]
        resumed.manager.persist_events([*resumed.events, UserMessage("over there"), Text("noted")])
    with LocalSessionService.open(sessions_cli.store) as service:
        resumed = SessionManager.resume(service, service.get_session(session_id))  # type: ignore[arg-type]
        resumed.manager.persist_events([*resumed.events, UserMessage("over here")])
    newer = tmp_path / "newer.jsonl"
    assert sessions_cli("export", session_id, "--store", source, "-o", newer).returncode == 0
    merged = sessions_cli("import", newer)
    assert merged.returncode == 0, merged.stderr
    assert f"merged {newer} into session {session_id}: 2 new event(s)" in merged.stdout
    tree = json.loads(sessions_cli("show", session_id, "--branches", "--json").stdout)
    texts = [e["data"].get("content") for b in tree["branches"] for e in b["events"]]
    assert {"over there", "over here", "noted"} <= set(texts)
    assert len(tree["branches"]) == 2  # both machines' turns are kept
    assert sessions_cli("verify", session_id).returncode == 0


def test_unarchive_of_a_session_that_is_not_archived_writes_nothing(sessions_cli: SessionsCLI) -> None:
    session_id = make_session(sessions_cli.store)
    log = sessions_cli.store / "sessions" / f"{session_id}.jsonl"
    before = log.read_bytes()
    result = sessions_cli("unarchive", session_id)
    assert result.returncode == 0, result.stderr
    assert log.read_bytes() == before


def test_a_read_only_store_is_read_and_refuses_writes_with_exit_3(sessions_cli: SessionsCLI, tmp_path: Path) -> None:
    session_id = make_session(sessions_cli.store, "/projects/backup")
    (sessions_cli.store / "index.jsonl").unlink()  # so listing has to read the logs, and cannot save what it read
    shutil.rmtree(sessions_cli.store / "locks")
    with read_only_view(sessions_cli.store.parent) as view:
        store = view / sessions_cli.store.name
        env = {"SESSIONS_STORE": str(store)}
        listed = sessions_cli("list", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        assert [s["id"] for s in json.loads(listed.stdout)] == [session_id]
        assert sessions_cli("list", env=env).returncode == 0
        for args in (
            ("show", session_id[-12:]),
            ("show", session_id, "--json"),
            ("verify", "--all"),
            ("export", session_id, "--format", "markdown"),
            ("search", "list the files"),
        ):
            result = sessions_cli(*args, env=env)
            assert result.returncode == 0, (args, result.stderr)
            assert result.stderr == "", (args, result.stderr)
        refused = sessions_cli("archive", session_id, env=env)
        assert refused.returncode == 3, refused.stderr
        assert "read-only file system" in refused.stderr and "Traceback" not in refused.stderr
        assert refused.stderr.count("\n") == 1
    assert not (sessions_cli.store / "index.jsonl").exists()  # nothing was written: no index, no lock
    assert not (sessions_cli.store / "locks").exists()


def test_exit_codes_are_documented_in_help(sessions_cli: SessionsCLI) -> None:
    out = sessions_cli("--help").stdout
    for line in ("0  success", "1  verify found damage", "2  a usage mistake", "3  the operation failed", "130"):
        assert line in out
    assert os.fspath(sessions_cli.executable)
