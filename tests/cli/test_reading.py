"""Reading sessions (issue #13, item 4): the pager, --follow, other branches, and a long session's first line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sessions import LocalSessionService, SessionManager, Text, UserMessage
from tests.cli.test_chat import read_until
from tests.cli.test_cli import make_session, run_on_a_terminal
from tests.cli.test_lifecycle import append_raw_event, event_ids, log_of
from tests.conftest import SessionsCLI


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_show_pages_on_a_terminal_only(sessions_cli: SessionsCLI, tmp_path: Path) -> None:
    session_id = make_session(sessions_cli.store)
    pager = tmp_path / "pager"
    pager.write_text("#!/bin/sh\nsed 's/^/paged: /'\n")
    pager.chmod(0o755)
    env = {"TERM": "xterm", "NO_COLOR": "1", "PAGER": str(pager)}
    on_terminal = run_on_a_terminal(sessions_cli, "show", session_id, env=env).decode()
    assert "paged: you> list the files" in on_terminal
    assert "paged: " not in run_on_a_terminal(sessions_cli, "show", session_id, "--no-pager", env=env).decode()
    piped = sessions_cli("show", session_id, env={"PAGER": str(pager)})
    assert "you> list the files" in piped.stdout and "paged:" not in piped.stdout


def test_show_says_when_events_sit_on_another_branch(sessions_cli: SessionsCLI) -> None:
    session_id = make_session(sessions_cli.store)
    events = event_ids(sessions_cli, session_id)
    append_raw_event(log_of(sessions_cli, session_id), events[1], "the other machine's answer")
    out = sessions_cli("show", session_id).stdout
    assert "events:      5" in out
    assert "1 more event(s) sit on other branches" in out and "--branches" in out
    assert "the other machine's answer" not in out


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_follow_prints_what_another_process_appends_until_ctrl_c(sessions_cli: SessionsCLI) -> None:
    with LocalSessionService.open(sessions_cli.store) as service:
        manager = SessionManager.create_new(service, "/live", None)
        manager.persist_events([UserMessage("before following")])
    primary, secondary = os.openpty()
    launcher = (
        "import fcntl, os, signal, sys, termios; signal.signal(signal.SIGINT, signal.SIG_DFL); "
        "fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execv(sys.argv[1], sys.argv[1:])"
    )
    with subprocess.Popen(
        [sys.executable, "-c", launcher, str(sessions_cli.executable), "show", manager.session_id, "--follow"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=sessions_cli.env({"TERM": "xterm"}),
        start_new_session=True,
    ) as process:
        os.close(secondary)
        try:
            seen = read_until(primary, b"Ctrl-C to stop")
            assert b"you> before following" in seen
            with LocalSessionService.open(sessions_cli.store) as service:
                resumed = SessionManager.resume(service, service.get_session(manager.session_id))  # type: ignore[arg-type]
                resumed.manager.persist_events([*resumed.events, UserMessage("while following"), Text("seen live")])
            seen = read_until(primary, b"seen live")
            assert b"you> while following" in seen
            os.write(primary, b"\x03")  # Ctrl-C typed at the terminal
            read_until(primary, b"\n", timeout=10)
            assert process.wait(timeout=60) == 130
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            os.close(primary)


def test_show_of_100000_events_starts_printing_within_a_second(sessions_cli: SessionsCLI) -> None:
    with LocalSessionService.open(sessions_cli.store, durability="flush") as service:
        manager = SessionManager.create_new(service, "/long", None)
        events: list[UserMessage | Text] = []
        for n in range(50_000):
            events += [UserMessage(f"question {n}"), Text(f"answer {n} " + "word " * 20)]
        manager.persist_events(events)
    best = float("inf")
    for _ in range(3):  # the best of three: the machine is shared
        start = time.monotonic()
        with subprocess.Popen(
            [str(sessions_cli.executable), "show", manager.session_id],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=sessions_cli.env(),
        ) as process:
            assert process.stdout is not None
            first_event = b""
            while b"you> question 0" not in first_event:
                first_event = process.stdout.readline()
                assert first_event, "show ended before the first event"
            best = min(best, time.monotonic() - start)
            process.kill()
    print(f"show of 100,000 events: first event printed after {best:.2f} s")
    assert best < 1.0
