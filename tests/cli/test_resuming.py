"""Going back to a session (issue #13, items 1, 6 and 8): --continue, --resume, the picker, holds, exit codes."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest

from sessions import LocalSessionService, SessionBusy, SessionManager, Text, UserMessage
from sessions.hold import held_elsewhere, hold_session
from tests.cli.test_chat import chat, read_until, sessions_json, wait_for
from tests.conftest import SessionsCLI


def old_session(store: Path, directory: Path, said: str, days_ago: float) -> str:
    """A session of ``directory`` whose last event is ``days_ago`` old."""
    with LocalSessionService.open(store) as service:
        manager = SessionManager.create_new(service, str(directory), None)
        manager.persist_events([UserMessage(said), Text("ok")])
        session_id = manager.session_id
    log = store / "sessions" / f"{session_id}.jsonl"
    when = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    for line in lines:
        line["ts"] = stamp
    log.write_text("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines))
    (store / "index.jsonl").unlink(missing_ok=True)
    return session_id


def test_a_fresh_start_hints_at_an_older_session_and_continue_resumes_it(sessions_cli: SessionsCLI) -> None:
    older = old_session(sessions_cli.store, sessions_cli.cwd, "the old question", days_ago=3)
    fresh = chat(sessions_cli, "a new question\n")
    assert "New session in" in fresh
    assert "an older session of this folder was last active 3 days ago" in fresh and "chat --continue" in fresh
    continued = chat(sessions_cli, "and again\n", args=("--continue",))
    assert "Continuing previous session" in continued
    assert "a new question" in continued  # the latest one, not the three-day-old one
    assert older not in continued


def test_resume_by_id_from_another_folder(sessions_cli: SessionsCLI, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    older = old_session(sessions_cli.store, elsewhere, "the old question", days_ago=30)
    out = chat(sessions_cli, "back to it\n", args=("--resume", older.rsplit("-", 1)[1][:6]))
    assert "Continuing previous session (last active 30 days ago)" in out
    assert "you> the old question" in out
    assert f"Saved session {older}" in out
    missing = sessions_cli("chat", "--resume", "ffffffffff", stdin_text="")
    assert missing.returncode == 2 and "no session 'ffffffffff'" in missing.stderr


def test_resume_without_an_id_off_a_terminal_is_a_usage_error(sessions_cli: SessionsCLI) -> None:
    result = sessions_cli("chat", "--resume", stdin_text="hello\n")
    assert result.returncode == 2
    assert "needs a terminal" in result.stderr and result.stderr.count("\n") == 1
    assert not (sessions_cli.store / "sessions").exists() or not list((sessions_cli.store / "sessions").iterdir())


def test_a_chat_that_cannot_save_its_last_turn_exits_3(sessions_cli: SessionsCLI) -> None:
    chat(sessions_cli, "first\n")
    (session,) = sessions_json(sessions_cli)
    # Another writer holds the session's append lock for the whole run: every save times out.
    with open(sessions_cli.store / "locks" / f"{session['id']}.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = sessions_cli("chat", stdin_text="second\n")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "could not save this turn yet" in result.stdout
    assert "The last turn could NOT be saved" in result.stdout
    assert "Traceback" not in result.stderr


def start_chat(cli: SessionsCLI, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(cli.executable), "chat", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cli.cwd,
        env=cli.env(),
    )


def test_a_session_open_in_one_chat_is_not_continued_by_a_second(sessions_cli: SessionsCLI) -> None:
    first = start_chat(sessions_cli)
    try:
        assert first.stdin is not None
        first.stdin.write("I am the first chat\n")
        first.stdin.flush()
        # `list` refuses a store that is not there yet: wait for the chat to create it first.
        wait_for(lambda: (sessions_cli.store / "sessions").is_dir() and bool(sessions_json(sessions_cli)))
        (session,) = sessions_json(sessions_cli)
        held = str(session["id"])
        locks = sessions_cli.store / "locks"
        assert held_elsewhere(locks, held) == first.pid

        second = chat(sessions_cli, "I am the second chat\n")
        assert "New session in" in second and "Continuing previous session" not in second
        assert f"session {held} of this folder is open in another chat, process {first.pid}" in second
        assert len(sessions_json(sessions_cli)) == 2
        assert [e["data"]["content"] for e in _user_messages(sessions_cli, held)] == ["I am the first chat"]

        # A library user gets the same from find_resumable, and cannot take the hold either.
        with LocalSessionService.open(sessions_cli.store) as service:
            found = service.find_resumable(str(sessions_cli.cwd), None, max_age_secs=3600)
            assert found is not None and found.id != held
            with pytest.raises(SessionBusy, match=f"open in another process \\(process {first.pid}\\)"):
                hold_session(service, held)

        first.kill()  # SIGKILL: no clean-up runs, the kernel drops the lock with the process
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate(timeout=60)
    assert held_elsewhere(sessions_cli.store / "locks", held) is None
    with LocalSessionService.open(sessions_cli.store) as service, hold_session(service, held) as hold:
        assert hold.held  # free again, for anyone
    third = chat(sessions_cli, "I am the third chat\n", args=("--resume", held))
    assert "Continuing previous session" in third


def _user_messages(cli: SessionsCLI, session_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads(cli("show", session_id, "--json").stdout)["events"]
    return [e for e in events if e["type"] == "user_message"]


def run_in_pty(cli: SessionsCLI, *args: str, keys: list[bytes], until: bytes) -> tuple[int, bytes]:
    """Run the command on a 100x30 pseudo-terminal, type ``keys`` once each prompt is drawn; (exit code, output)."""
    primary, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    launcher = (
        "import fcntl, os, signal, sys, termios; signal.signal(signal.SIGINT, signal.SIG_DFL); "
        "fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execv(sys.argv[1], sys.argv[1:])"
    )
    with subprocess.Popen(
        [sys.executable, "-c", launcher, str(cli.executable), *args],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        cwd=cli.cwd,
        env=cli.env({"TERM": "xterm", "NO_COLOR": ""}),
        start_new_session=True,
    ) as process:
        os.close(secondary)
        try:
            seen = read_until(primary, b"Resume which session?")
            for key in keys:
                time.sleep(0.2)
                os.write(primary, key)
            seen += read_until(primary, until)
            code = process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            os.close(primary)
    return code, seen


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_the_picker_filters_as_you_type_and_moves_with_arrow_keys(sessions_cli: SessionsCLI, tmp_path: Path) -> None:
    ids = {
        said: old_session(sessions_cli.store, tmp_path / said.split()[0], said, days_ago=n + 1)
        for n, said in enumerate(["alpha question", "beta question", "gamma question"])
    }
    # Typing filters: only "gamma" is left, Enter resumes it; then the chat reads the terminal.
    code, out = run_in_pty(sessions_cli, "chat", "--resume", keys=[b"gam", b"\r", b"/quit\r"], until=b"shows it again")
    assert code == 0, out
    assert b"Continuing previous session (last active 3 days ago)" in out
    assert f"Saved session {ids['gamma question']}".encode() in out
    # Down arrow once: the second most recent.
    code, out = run_in_pty(
        sessions_cli, "chat", "--resume", keys=[b"\x1b[B", b"\r", b"/quit\r"], until=b"shows it again"
    )
    assert code == 0, out
    assert f"Saved session {ids['beta question']}".encode() in out
    # Esc: nothing chosen, nothing started.
    code, out = run_in_pty(sessions_cli, "chat", "--resume", keys=[b"\x1b"], until=b"nothing was started")
    assert code == 0
    assert len(sessions_json(sessions_cli)) == 3
