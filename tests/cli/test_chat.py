"""The demo chat: resuming like the reference application, persisting every turn, exiting cleanly."""

from __future__ import annotations

import io
import json
import os
import select
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from sessions import DamagedLogWarning, LocalSessionService, SessionManager, Text, UserMessage
from sessions.cli.chat import EDIT_PERMISSIONS_KEY, FILE_READS_KEY, Chat, stream_lines
from tests.conftest import SessionsCLI

RESUMED = "Continuing previous session (last active just now) — type /new to start a new session"


def chat(cli: SessionsCLI, lines: str, *, cwd: Path | None = None, args: tuple[str, ...] = ()) -> str:
    """Run ``sessions chat --script`` with ``lines``; returns its output."""
    script = (cwd or cli.cwd) / ".chat-script"
    script.write_text(lines)
    try:
        result = cli("chat", "--script", script, *args, cwd=cwd)
    finally:
        script.unlink()
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def sessions_json(cli: SessionsCLI) -> list[dict[str, object]]:
    result = cli("list", "--all", "--json")
    assert result.returncode == 0, result.stderr
    sessions: list[dict[str, object]] = json.loads(result.stdout)
    return sessions


def event_types(store: Path, session_id: str) -> list[str]:
    with LocalSessionService.open(store) as service:
        return [e.event_type for e in service.load_events(session_id)]


def test_second_run_resumes_and_new_archives(sessions_cli: SessionsCLI) -> None:
    first = chat(sessions_cli, "hello\nrun ls\n")
    assert "New session in" in first
    assert RESUMED not in first
    (session,) = sessions_json(sessions_cli)
    session_id = str(session["id"])
    assert session["event_count"] == 7
    assert event_types(sessions_cli.store, session_id) == [
        "system_context",
        "user_message",
        "text",
        "user_message",
        "tool_call",
        "tool_result",
        "text",
    ]

    second = chat(sessions_cli, "what did I say?\n/history\n")
    assert RESUMED in second
    assert "you> hello" in second.split(RESUMED)[1]  # the last turns are shown
    assert "that is message 3 from you" in second  # the conversation continued, not restarted
    (session,) = sessions_json(sessions_cli)
    assert session["id"] == session_id

    third = chat(sessions_cli, "/new\nfresh start\n")
    assert RESUMED in third
    assert f"Archived session {session_id}" in third
    sessions = {str(s["id"]): s for s in sessions_json(sessions_cli)}
    assert len(sessions) == 2
    assert sessions[session_id]["archived_at"] is not None
    (new_id,) = set(sessions) - {session_id}
    assert sessions[new_id]["archived_at"] is None
    assert event_types(sessions_cli.store, new_id) == ["system_context", "user_message", "text"]

    fourth = chat(sessions_cli, "and now?\n")
    assert RESUMED in fourth
    assert "that is message 2 from you" in fourth  # resumed the new session, not the archived one


def test_every_event_type_and_the_per_turn_facts_are_persisted(sessions_cli: SessionsCLI) -> None:
    (sessions_cli.cwd / "notes.txt").write_text("first line\nsecond line\n")
    out = chat(sessions_cli, "hi\nrun cat notes.txt\nrun rm -rf /\n!pwd\n/skill summarize\n/quit\nnever read\n")
    assert "tool result:" in out and "first line" in out
    assert "tool error: `rm` is not available in this offline demo" in out
    (session,) = sessions_json(sessions_cli)
    session_id = str(session["id"])
    types = event_types(sessions_cli.store, session_id)
    assert set(types) == {
        "system_context",
        "user_message",
        "text",
        "tool_call",
        "tool_result",
        "out_of_band_output",
        "skill_invocation",
    }
    assert types.count("user_message") == 3  # "/quit" stopped before "never read"
    assert str(session["server_session_id"]).startswith("offline-")
    with LocalSessionService.open(sessions_cli.store) as service:
        tracker = json.loads(service.get_metadata(session_id, FILE_READS_KEY) or "null")
        permissions = json.loads(service.get_metadata(session_id, EDIT_PERMISSIONS_KEY) or "null")
    assert list(tracker["files"]) == [str((sessions_cli.cwd / "notes.txt").resolve())]
    assert tracker["files"][str((sessions_cli.cwd / "notes.txt").resolve())]["lines"] == 2
    assert permissions == {"allowed_commands": ["cat", "pwd"]}
    assert sessions_cli("verify", session_id).returncode == 0


def test_stdin_that_is_not_a_terminal_drives_the_chat(sessions_cli: SessionsCLI) -> None:
    result = sessions_cli("chat", stdin_text="hello\nrun echo piped\n")
    assert result.returncode == 0, result.stderr
    assert "you> hello" in result.stdout
    assert "piped" in result.stdout
    assert "Saved session" in result.stdout
    (session,) = sessions_json(sessions_cli)
    assert session["event_count"] == 7
    # The hint it ends with is a command that works from here, even when `sessions` is not on PATH.
    hint = result.stdout.rsplit("`", 2)[1]
    shown = subprocess.run(
        shlex.split(hint), capture_output=True, text=True, cwd=sessions_cli.cwd, env=sessions_cli.env(), check=False
    )
    assert shown.returncode == 0, (hint, shown.stderr)
    assert f"Session {session['id']}" in shown.stdout


def test_resumes_by_git_root_from_another_subfolder(sessions_cli: SessionsCLI, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "docs").mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True, capture_output=True)
    chat(sessions_cli, "hello from src\n", cwd=repo / "src")
    out = chat(sessions_cli, "hello from docs\n", cwd=repo / "docs")
    assert RESUMED in out
    (session,) = sessions_json(sessions_cli)
    assert session["git_root"] == str(repo.resolve())
    assert session["directory"] == str((repo / "src").resolve())

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert RESUMED not in chat(sessions_cli, "hello\n", cwd=elsewhere)
    assert len(sessions_json(sessions_cli)) == 2


def test_max_age_limits_what_is_resumed(sessions_cli: SessionsCLI) -> None:
    chat(sessions_cli, "hello\n")
    assert RESUMED not in chat(sessions_cli, "hello again\n", args=("--max-age", "0"))
    assert len(sessions_json(sessions_cli)) == 2


def test_an_empty_run_creates_no_session(sessions_cli: SessionsCLI) -> None:
    chat(sessions_cli, "/history\n/help\n/quit\n")
    assert sessions_json(sessions_cli) == []


def test_a_log_with_newer_and_damaged_lines_still_resumes(sessions_cli: SessionsCLI) -> None:
    chat(sessions_cli, "hello\n")
    (session,) = sessions_json(sessions_cli)
    session_id = str(session["id"])
    with LocalSessionService.open(sessions_cli.store) as service:
        service.append_event(session_id, "future-1", str(session["head_id"]), "inv", "hologram", '{"x": 1}')
    log = sessions_cli.store / "sessions" / f"{session_id}.jsonl"
    with open(log, "ab") as f:
        f.write(b"this line is damaged\n")

    script = sessions_cli.cwd / "s.txt"
    script.write_text("still here\n")
    result = sessions_cli("chat", "--script", script)
    assert result.returncode == 0, result.stderr
    assert RESUMED in result.stdout
    assert "[hologram: unknown to this version, kept as is]" in result.stdout
    assert "skipped 1 damaged line(s)" in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.warns(DamagedLogWarning, match="skipped 1 damaged line"):
        assert event_types(sessions_cli.store, session_id)[-3:] == ["hologram", "user_message", "text"]
    assert b"this line is damaged\n" in log.read_bytes()  # kept, never rewritten


def wait_for(predicate: object, timeout: float = 60.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting for the chat")
        time.sleep(0.05)


@pytest.mark.parametrize("how", ["ctrl-c", "ctrl-d"])
def test_interrupt_or_end_of_input_loses_nothing(sessions_cli: SessionsCLI, how: str) -> None:
    # A test runner started in the background may ignore SIGINT, and children inherit that; reset it to the
    # default, as a terminal has it, then exec the real console script.
    launcher = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    )
    with subprocess.Popen(
        [sys.executable, "-c", launcher, str(sessions_cli.executable), "chat"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=sessions_cli.cwd,
        env=sessions_cli.env(),
    ) as process:
        assert process.stdin is not None
        try:
            process.stdin.write("first turn\nrun pwd\n")
            process.stdin.flush()

            def saved() -> bool:
                sessions = json.loads(sessions_cli("list", "--json").stdout)
                return bool(sessions) and sessions[0]["event_count"] == 7

            wait_for(saved)
            if how == "ctrl-c":
                process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=60)  # closes stdin: end of input, as Ctrl-D is
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == (130 if how == "ctrl-c" else 0), err  # 130: as a shell reports SIGINT
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "Saved session" in out
    assert ("Interrupted: every finished turn is saved." in out) == (how == "ctrl-c")
    (session,) = sessions_json(sessions_cli)
    assert event_types(sessions_cli.store, str(session["id"])) == [
        "system_context",
        "user_message",
        "text",
        "user_message",
        "tool_call",
        "tool_result",
        "text",
    ]


def test_a_second_writer_is_merged_not_forked(tmp_path: Path) -> None:
    """Two chats on one session: the one that finds the head moved reloads and appends after it."""
    service = LocalSessionService.open(tmp_path / "store")
    directory = tmp_path / "work"
    directory.mkdir()
    out = io.StringIO()
    first = Chat(service, Console(file=out, no_color=True), directory=directory)
    first.start()
    first.handle("hello")
    stored = service.get_session(first.manager.session_id)
    assert stored is not None
    other = SessionManager.resume(service, stored)
    other.manager.persist_events([*other.events, UserMessage("from elsewhere"), Text("ok")])

    first.handle("after the other")
    assert "another chat added 2 event(s) to this session" in out.getvalue()
    report = service.verify(first.manager.session_id)
    assert report.ok and not report.forked
    events = SessionManager.resume(service, stored).events
    contents = [getattr(e, "content", None) for e in events]
    assert len(events) == 7
    assert contents[1] == "hello"
    assert contents[3:6] == ["from elsewhere", "ok", "after the other"]
    assert isinstance(events[6], Text)


def test_stream_lines_strips_newlines_only() -> None:
    assert list(stream_lines(iter(["a b \n", "\n", "last"]))) == ["a b ", "", "last"]


def read_until(fd: int, needle: bytes, timeout: float = 60.0) -> bytes:
    """Read from a pty until ``needle`` appears; returns everything read."""
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {needle!r}; got {seen!r}")
        # poll, not select: select refuses descriptors above 1023, which a long test run reaches.
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        ready = poller.poll(100)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the other side closed: Linux reports EIO
                break
            if not chunk:
                break
            seen += chunk
    return seen


def wait_until_waiting_for_input(pid: int, timeout: float = 60.0) -> None:
    """Wait until ``pid`` sleeps (blocked reading the terminal), as it is when a person presses a key.

    A Ctrl-C that lands between the prompt being written and the read starting is only seen at the next
    key (CPython checks signals before and after ``read()``, not in between); people are never that fast.
    """
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():
        time.sleep(1.0)
        return
    deadline = time.monotonic() + timeout
    asleep_since: float | None = None
    while time.monotonic() < deadline:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
        now = time.monotonic()
        if state != "S":
            asleep_since = None
        elif asleep_since is None:
            asleep_since = now
        elif now - asleep_since > 0.3:
            return
        time.sleep(0.02)
    pytest.fail(f"process {pid} never settled waiting for input")


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
@pytest.mark.parametrize("key", [b"\x04", b"\x03"], ids=["ctrl-d", "ctrl-c"])
def test_interactive_chat_on_a_terminal(sessions_cli: SessionsCLI, key: bytes) -> None:
    """A real terminal: a prompt, line editing input, and Ctrl-D / Ctrl-C typed as keys."""
    primary, secondary = os.openpty()
    # Make the pty the chat's controlling terminal, so Ctrl-C typed into it sends SIGINT as a terminal does.
    launcher = (
        "import fcntl, os, signal, sys, termios; signal.signal(signal.SIGINT, signal.SIG_DFL); "
        "fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execv(sys.argv[1], sys.argv[1:])"
    )
    with subprocess.Popen(
        [sys.executable, "-c", launcher, str(sessions_cli.executable), "chat"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        cwd=sessions_cli.cwd,
        env=sessions_cli.env({"TERM": "xterm"}),
        start_new_session=True,
    ) as process:
        os.close(secondary)
        try:
            read_until(primary, b"you> ")
            os.write(primary, b"hello there\r")
            read_until(primary, b"assistant> ")
            read_until(primary, b"you> ")
            wait_until_waiting_for_input(process.pid)
            os.write(primary, key)
            rest = read_until(primary, b"shows it again")
            assert process.wait(timeout=60) == (130 if key == b"\x03" else 0)
        finally:
            if process.poll() is None:
                process.kill()
            os.close(primary)
    assert b"Traceback" not in rest
    assert (b"Interrupted: every finished turn is saved." in rest) == (key == b"\x03")
    (session,) = sessions_json(sessions_cli)
    assert event_types(sessions_cli.store, str(session["id"])) == ["system_context", "user_message", "text"]
