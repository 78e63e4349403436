"""``sessions rm``, ``restore``, ``trash``, ``gc``, ``fork``, ``rewind`` and ``show --tail`` / ``--branches``,
run as the installed console script against a temporary store."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import uuid
from pathlib import Path

import filelock
import pytest

from sessions import LocalSessionService, SessionManager, Text
from sessions.cli.lifecycle import size_text
from tests.cli.test_cli import assert_one_line_error, make_session, run_on_a_terminal
from tests.conftest import SessionsCLI

SYNCTHING_COPY = "{sid}.sync-conflict-20260101-120000-ABCDEFG.jsonl"
NEW_COMMANDS = ("rm", "restore", "trash", "gc", "fork", "rewind")


def log_of(cli: SessionsCLI, session_id: str) -> Path:
    return cli.store / "sessions" / f"{session_id}.jsonl"


def deleted_dir(cli: SessionsCLI) -> Path:
    return cli.store / "trash" / "deleted"


def event_ids(cli: SessionsCLI, session_id: str) -> list[str]:
    """The ids of the session's active branch, as ``show --json`` gives them."""
    result = cli("show", session_id, "--json")
    assert result.returncode == 0, result.stderr
    return [e["id"] for e in json.loads(result.stdout)["events"]]


def assert_failed_with(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    """Exit ``code`` with one line on stderr per failure, and no traceback."""
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def append_raw_event(log: Path, parent: str, content: str) -> str:
    """Append an assistant event hanging from ``parent`` (docs/FORMAT.md), as a sync merge leaves a second branch."""
    event_id = str(uuid.uuid4())
    ts = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    line = {"k": "event", "id": event_id, "ts": ts, "parent": parent, "inv": "i", "type": "text"}
    line["data"] = {"content": content}  # type: ignore[assignment]
    with log.open("ab") as f:
        f.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
    return event_id


def archive_long_ago(store: Path, session_id: str, days: int) -> None:
    """Archive the session, then date the archive fact ``days`` back (the index is dropped to be rebuilt)."""
    with LocalSessionService.open(store) as service:
        service.archive(session_id)
    log = store / "sessions" / f"{session_id}.jsonl"
    *lines, last = log.read_bytes().splitlines(keepends=True)
    fact = json.loads(last)
    assert (fact["k"], fact["type"]) == ("fact", "archived")
    fact["ts"] = (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    log.write_bytes(b"".join(lines) + json.dumps(fact, separators=(",", ":")).encode() + b"\n")
    (store / "index.jsonl").unlink(missing_ok=True)


def test_sizes_read_like_people_say_them() -> None:
    assert [size_text(n) for n in (0, 812, 1024, 1536, 5 * 2**20, 3 * 2**40)] == [
        "0 B",
        "812 B",
        "1.0 KiB",
        "1.5 KiB",
        "5.0 MiB",
        "3072.0 GiB",
    ]


def test_new_commands_have_honest_help(sessions_cli: SessionsCLI) -> None:
    top = sessions_cli("--help")
    for command in NEW_COMMANDS:
        assert command in top.stdout
        sub = sessions_cli(command, "--help")
        assert sub.returncode == 0, sub.stderr
        assert f"sessions {command}" in sub.stdout and "exit codes" in sub.stdout
    assert "trash/deleted/" in sessions_cli("rm", "--help").stdout
    assert "--purge" in sessions_cli("trash", "--help").stdout
    assert "Nothing is deleted" in sessions_cli("rewind", "--help").stdout
    show = sessions_cli("show", "--help").stdout
    assert "--tail N" in show and "--branches" in show


# -- rm -----------------------------------------------------------------------------------


def test_rm_moves_logs_and_conflict_copies_to_the_trash(sessions_cli: SessionsCLI) -> None:
    first = make_session(sessions_cli.store, "/p/one")
    second = make_session(sessions_cli.store, "/p/two")
    kept = make_session(sessions_cli.store, "/p/three")
    copy = sessions_cli.store / "sessions" / SYNCTHING_COPY.format(sid=first)
    copy.write_bytes(log_of(sessions_cli, first).read_bytes())
    logs = {sid: log_of(sessions_cli, sid).read_bytes() for sid in (first, second)}

    result = sessions_cli("rm", first[:13], "ffff", second)
    # The unknown id is a usage mistake (2), and the other sessions are deleted all the same.
    assert_failed_with(result, 2, "no session 'ffff'")
    assert result.stderr.count("\n") == 1
    assert f"deleted {first}: moved {first}.jsonl, {copy.name} to {deleted_dir(sessions_cli)}" in result.stdout
    assert f"deleted {second}: moved {second}.jsonl to" in result.stdout
    assert sorted(p.name for p in (sessions_cli.store / "sessions").iterdir()) == [f"{kept}.jsonl"]
    for sid, data in logs.items():
        assert (deleted_dir(sessions_cli) / f"{sid}.jsonl").read_bytes() == data  # whole and unchanged
    assert (deleted_dir(sessions_cli) / copy.name).exists()
    assert [s["id"] for s in json.loads(sessions_cli("list", "--all", "--json").stdout)] == [kept]

    again = sessions_cli("rm", kept, kept[:10])  # the same session twice is deleted once
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [f"deleted {kept}: moved {kept}.jsonl to {deleted_dir(sessions_cli)}"]
    assert_one_line_error(sessions_cli("rm", first), f"no session '{first}'")  # already in the trash
    assert_one_line_error(sessions_cli("rm"), "the following arguments are required: ID")


def test_rm_of_an_ambiguous_prefix_or_a_busy_session(sessions_cli: SessionsCLI) -> None:
    with LocalSessionService.open(sessions_cli.store) as service:
        service.create_session("11111111-1111-7111-8111-111111111111", "/a", None)
        service.create_session("11111111-2222-7222-8222-222222222222", "/b", None)
    assert_one_line_error(sessions_cli("rm", "11111111"), "matches 2 sessions")
    busy = "11111111-2222-7222-8222-222222222222"
    with filelock.FileLock(sessions_cli.store / "locks" / f"{busy}.lock"):  # a writer in another process
        result = sessions_cli("rm", busy, "11111111-1")
    assert_failed_with(result, 3, f"session {busy} is busy")
    assert result.stdout.startswith("deleted 11111111-1111-7111-8111-111111111111")
    assert log_of(sessions_cli, busy).exists()


# -- restore ------------------------------------------------------------------------------


def test_restore_brings_a_deleted_session_back(sessions_cli: SessionsCLI, tmp_path: Path) -> None:
    session_id = make_session(sessions_cli.store)
    before = sessions_cli("show", session_id)
    log = log_of(sessions_cli, session_id).read_bytes()
    assert sessions_cli("rm", session_id).returncode == 0

    restored = sessions_cli("restore", session_id[:13])  # a prefix of an id that is only in the trash
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout == f"restored {session_id} from {deleted_dir(sessions_cli) / (session_id + '.jsonl')}\n"
    assert log_of(sessions_cli, session_id).read_bytes() == log
    assert sessions_cli("show", session_id).stdout == before.stdout
    assert json.loads(sessions_cli("trash", "--json").stdout) == []

    # Not in the trash any more: nothing to restore.
    assert_one_line_error(sessions_cli("restore", session_id), f"no deleted session {session_id}")
    assert_one_line_error(sessions_cli("restore", "ffff"), "no session 'ffff' in the trash", "`sessions trash`")
    assert_one_line_error(sessions_cli("restore"), "the following arguments are required: id")


def test_restore_never_replaces_a_session_in_the_store(sessions_cli: SessionsCLI, tmp_path: Path) -> None:
    session_id = make_session(sessions_cli.store)
    exported = tmp_path / "copy.jsonl"
    assert sessions_cli("export", session_id, "-o", exported).returncode == 0
    assert sessions_cli("rm", session_id).returncode == 0
    assert sessions_cli("import", exported).returncode == 0  # the session is back another way, and goes on
    with LocalSessionService.open(sessions_cli.store) as service:
        service.set_metadata(session_id, "k", "written after the import")
    live = log_of(sessions_cli, session_id).read_bytes()

    result = sessions_cli("restore", session_id)
    assert_failed_with(result, 3, f"session {session_id} exists", "nothing was restored")
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert log_of(sessions_cli, session_id).read_bytes() == live
    assert [t["id"] for t in json.loads(sessions_cli("trash", "--json").stdout)] == [session_id]


# -- trash --------------------------------------------------------------------------------


def test_trash_lists_and_purges(sessions_cli: SessionsCLI) -> None:
    assert sessions_cli("trash").stdout.startswith("The trash is empty")  # no store yet: nothing is created
    assert json.loads(sessions_cli("trash", "--json").stdout) == []
    assert not sessions_cli.store.exists()
    first = make_session(sessions_cli.store, "/p/one")
    second = make_session(sessions_cli.store, "/p/two")
    sizes = {sid: log_of(sessions_cli, sid).stat().st_size for sid in (first, second)}
    assert "The trash is empty" in sessions_cli("trash").stdout
    assert sessions_cli("rm", first).returncode == 0
    assert sessions_cli("rm", second).returncode == 0

    table = sessions_cli("trash")
    assert table.returncode == 0, table.stderr
    for sid in (first, second):
        row = next(line for line in table.stdout.splitlines() if sid in line)
        assert row.split()[1:3] == ["just", "now"] and row.endswith(size_text(sizes[sid]))
    assert "2 deleted session log(s)" in table.stdout
    listed = json.loads(sessions_cli("trash", "--json").stdout)
    assert {t["id"]: t["size"] for t in listed} == sizes
    assert {t["path"] for t in listed} == {str(deleted_dir(sessions_cli) / f"{sid}.jsonl") for sid in sizes}
    for t in listed:
        assert dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(t["deleted_at"]) < dt.timedelta(minutes=5)

    assert_one_line_error(sessions_cli("trash", "--purge"), "--purge needs --older-than DAYS")
    assert_one_line_error(sessions_cli("trash", "--older-than", "3"), "--older-than is for --purge")
    assert_one_line_error(sessions_cli("trash", "--purge", "--older-than", "soon"), "'soon' is not a number of days")
    assert_one_line_error(sessions_cli("trash", "--purge", "--older-than", "-1"), "(0 or more)")
    kept = sessions_cli("trash", "--purge", "--older-than", "1")
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.startswith("removed 0 file(s) for good")
    assert len(json.loads(sessions_cli("trash", "--json").stdout)) == 2

    purged = sessions_cli("trash", "--purge", "--older-than", "0", "--json")
    assert purged.returncode == 0, purged.stderr
    assert json.loads(purged.stdout) == {"removed": 2, "older_than_days": 0.0}
    assert list(deleted_dir(sessions_cli).iterdir()) == []
    assert_one_line_error(sessions_cli("restore", first), f"no session '{first}' in the trash")


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_trash_table_fits_80_columns(sessions_cli: SessionsCLI) -> None:
    session_id = make_session(sessions_cli.store, "/a/directory/with/a/rather/long/name/" + "x" * 40)
    assert sessions_cli("rm", session_id).returncode == 0
    out = run_on_a_terminal(sessions_cli, "trash", env={"TERM": "xterm-256color", "NO_COLOR": "1", "COLUMNS": "80"})
    lines = out.decode().splitlines()
    assert any(session_id in line for line in lines)  # the whole id, never cut
    assert max(map(len, lines)) <= 80, lines


# -- gc -----------------------------------------------------------------------------------


def test_gc_moves_sessions_archived_long_ago_to_the_trash(sessions_cli: SessionsCLI) -> None:
    old = make_session(sessions_cli.store, "/p/old")
    recent = make_session(sessions_cli.store, "/p/recent")
    active = make_session(sessions_cli.store, "/p/active")
    archive_long_ago(sessions_cli.store, old, days=40)
    with LocalSessionService.open(sessions_cli.store) as service:
        service.archive(recent)

    dry = sessions_cli("gc", "--archived-older-than", "30", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would move 1 session(s) archived more than 30 day(s) ago" in dry.stdout
    assert f"{old}  archived 40 days ago  /p/old" in dry.stdout
    assert recent not in dry.stdout and "dry run: nothing was changed" in dry.stdout
    dry_json = json.loads(sessions_cli("gc", "--archived-older-than", "30", "--dry-run", "--json").stdout)
    assert [(r["id"], r["directory"], r["trashed"]) for r in dry_json] == [(old, "/p/old", False)]
    assert log_of(sessions_cli, old).exists()

    moved = sessions_cli("gc", "--archived-older-than", "30", "--json")
    assert moved.returncode == 0, moved.stderr
    assert [(r["id"], r["trashed"]) for r in json.loads(moved.stdout)] == [(old, True)]
    assert not log_of(sessions_cli, old).exists()
    assert [t["id"] for t in json.loads(sessions_cli("trash", "--json").stdout)] == [old]
    assert {s["id"] for s in json.loads(sessions_cli("list", "--all", "--json").stdout)} == {recent, active}

    assert sessions_cli("gc", "--archived-older-than", "30").stdout == (
        "no session was archived more than 30 day(s) ago\n"
    )
    everything = sessions_cli("gc", "--archived-older-than", "0")
    assert everything.returncode == 0, everything.stderr
    assert "moved 1 session(s) archived more than 0 day(s) ago" in everything.stdout and recent in everything.stdout
    assert [s["id"] for s in json.loads(sessions_cli("list", "--all", "--json").stdout)] == [active]

    assert_one_line_error(sessions_cli("gc"), "the following arguments are required: --archived-older-than")
    assert_one_line_error(sessions_cli("gc", "--archived-older-than", "-2"), "(0 or more)")


# -- fork ---------------------------------------------------------------------------------


def test_fork_at_an_event_prefix(sessions_cli: SessionsCLI) -> None:
    original = make_session(sessions_cli.store, "/p/fork")
    events = event_ids(sessions_cli, original)
    shared = next(n for n in range(len(events[0]) + 1) if len({e[: n + 1] for e in events}) > 1)
    prefix = events[0][:shared]  # what all four ids start with (UUIDv7s of one turn share their time)
    at = next(events[1][:n] for n in range(1, 37) if sum(e.startswith(events[1][:n]) for e in events) == 1)

    forked = sessions_cli("fork", original[:13], "--at", at, "--json")
    assert forked.returncode == 0, forked.stderr
    fork = json.loads(forked.stdout)
    assert (fork["forked_from"], fork["fork_event_id"], fork["event_count"]) == (original, events[1], 2)
    assert fork["directory"] == "/p/fork" and fork["id"] != original
    assert event_ids(sessions_cli, fork["id"]) == events[:2]
    assert event_ids(sessions_cli, original) == events  # the original is untouched

    at_head = sessions_cli("fork", original)
    assert at_head.returncode == 0, at_head.stderr
    new_id, *details = at_head.stdout.splitlines()
    assert event_ids(sessions_cli, new_id) == events
    assert details == [f"  forked from: {original}", f"  at event:    {events[-1]}", "  events:      4"]
    shown = sessions_cli("show", new_id).stdout
    assert f"forked from: {original} at event {events[-1]}" in shown

    assert_one_line_error(sessions_cli("fork", "ffff"), "no session 'ffff'")
    assert_one_line_error(sessions_cli("fork", original, "--at", "nope"), "no event 'nope' in session")
    if prefix:
        assert_one_line_error(sessions_cli("fork", original, "--at", prefix), "matches 4 events")
    assert_one_line_error(sessions_cli("fork", original, "--at"), "expected one argument")


# -- rewind -------------------------------------------------------------------------------


def test_rewind_makes_an_event_the_head_and_keeps_the_rest(sessions_cli: SessionsCLI) -> None:
    session_id = make_session(sessions_cli.store)
    events = event_ids(sessions_cli, session_id)
    log = log_of(sessions_cli, session_id)

    result = sessions_cli("rewind", session_id[:13], "--to", events[1])
    assert result.returncode == 0, result.stderr
    assert f"rewound {session_id}: its head is now {events[1]} (it was {events[3]})" in result.stdout
    assert event_ids(sessions_cli, session_id) == events[:2]
    assert all(event_id.encode() in log.read_bytes() for event_id in events)  # nothing was deleted

    # The next append continues from the event rewound to; the abandoned events are a branch.
    with LocalSessionService.open(sessions_cli.store) as service:
        resumed = SessionManager.resume(service, service.get_session(session_id))  # type: ignore[arg-type]
        resumed.manager.persist_events([*resumed.events, Text("a different answer")])
    now = json.loads(sessions_cli("show", session_id, "--json").stdout)["events"]
    assert [e["id"] for e in now[:2]] == events[:2] and now[2]["parent"] == events[1]
    tree = json.loads(sessions_cli("show", session_id, "--branches", "--json").stdout)
    assert [(b["active"], len(b["events"])) for b in tree["branches"]] == [(True, 3), (False, 4)]
    assert [e["id"] for e in tree["branches"][1]["events"]] == events

    assert_one_line_error(sessions_cli("rewind", "ffff", "--to", events[0]), "no session 'ffff'")
    assert_one_line_error(sessions_cli("rewind", session_id, "--to", "nope"), "no event 'nope'")
    assert_one_line_error(sessions_cli("rewind", session_id), "the following arguments are required: --to")


# -- show --tail and --branches -----------------------------------------------------------


def test_show_tail(sessions_cli: SessionsCLI) -> None:
    session_id = make_session(sessions_cli.store)
    result = sessions_cli("show", session_id[:13], "--tail", "2")
    assert result.returncode == 0, result.stderr
    assert f"Session {session_id}" in result.stdout and "events:      4" in result.stdout
    assert "(the last 2 of the active branch's events)" in result.stdout
    assert "tool result: README.md" in result.stdout and "assistant> There is one file" in result.stdout
    assert "you> list the files" not in result.stdout and "tool call" not in result.stdout

    whole = sessions_cli("show", session_id, "--json").stdout
    tail = json.loads(sessions_cli("show", session_id, "--tail", "2", "--json").stdout)
    assert tail == {**json.loads(whole), "events": json.loads(whole)["events"][-2:]}
    assert sessions_cli("show", session_id, "--tail", "100", "--json").stdout == whole  # the same fields, exactly

    assert_one_line_error(sessions_cli("show", session_id, "--tail", "0"), "is not a number of events (1 or more)")
    assert_one_line_error(sessions_cli("show", session_id, "--tail", "two"), "'two' is not a whole number")
    assert_one_line_error(sessions_cli("show", session_id, "--raw", "--tail", "1"), "not with --tail")
    assert_one_line_error(sessions_cli("show", session_id, "--tail", "1", "--branches"), "not allowed with")
    assert_one_line_error(sessions_cli("show", "ffff", "--tail", "1"), "no session 'ffff'")


def test_show_branches(sessions_cli: SessionsCLI) -> None:
    session_id = make_session(sessions_cli.store)
    events = event_ids(sessions_cli, session_id)
    other = append_raw_event(log_of(sessions_cli, session_id), events[1], "the other machine's answer")

    result = sessions_cli("show", session_id, "--branches")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "branch 1 of 2 (active): 4 events" in out
    assert "branch 2 of 2: 3 events" in out and "the first 2 as in branch 1, then:" in out
    second = out[out.index("branch 2 of 2") :]
    assert "assistant> the other machine's answer" in second and "you> list the files" not in second
    assert out.index("you> list the files") < out.index("branch 2 of 2")

    document = json.loads(sessions_cli("show", session_id, "--branches", "--json").stdout)
    assert document["session"]["id"] == session_id
    branches = document["branches"]
    assert [(b["active"], b["head"]) for b in branches] == [(True, events[-1]), (False, other)]
    assert [e["id"] for e in branches[0]["events"]] == events
    assert [e["id"] for e in branches[1]["events"]] == [*events[:2], other]
    plain = json.loads(sessions_cli("show", session_id, "--json").stdout)
    assert set(branches[1]["events"][2]) == set(plain["events"][0])  # the same field names as show --json
    assert branches[1]["events"][2]["data"] == {"content": "the other machine's answer"}

    short = out.split("branch 2 of 2")[1].splitlines()[1].split()[0]  # the id printed before each event
    assert other.rsplit("-", 1)[1].startswith(short) and len(short) >= 6  # the start of its random part
    at = sessions_cli("fork", session_id, "--at", short)  # accepted where an event id is taken
    assert at.returncode == 0, at.stderr
    assert_one_line_error(sessions_cli("show", "ffff", "--branches"), "no session 'ffff'")
