"""Telling sessions apart and finding them again (issue #13, items 2 and 3): list, short ids, search."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sessions import LocalSessionService, SessionManager, Text, ToolCall, ToolResult, UserMessage, shortid
from sessions.search import required_literals
from tests.cli.test_cli import make_session
from tests.conftest import SessionsCLI


def chat_session(store: Path, directory: str, *said: str, title: str | None = None) -> str:
    with LocalSessionService.open(store) as service:
        manager = SessionManager.create_new(service, directory, None)
        events = []
        for line in said:
            events += [UserMessage(line), Text(f"you said {line!r}")]
        manager.persist_events(events)
        if title is not None:
            manager.set_metadata("title", title)
        return manager.session_id


def test_list_fits_80_columns_with_long_folders_and_titles(sessions_cli: SessionsCLI) -> None:
    deep = "/home/someone/" + "/".join(f"a-rather-long-folder-name-{n}" for n in range(6)) + "/project"
    long_message = "please read every file in this repository and explain " * 5
    ids = [chat_session(sessions_cli.store, deep, long_message) for _ in range(3)]
    ids.append(chat_session(sessions_cli.store, "/tmp", "short", title="My chosen\ntitle"))
    result = sessions_cli("list", env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5  # a header and one line per session: nothing wraps
    assert all(len(line) <= 80 for line in lines), [len(line) for line in lines]
    assert lines[0].split() == ["ID", "Title", "Active", "Events", "Folder"]
    short = shortid.short_ids(ids)
    for session_id, line in zip(reversed(ids), lines[1:], strict=True):
        assert line.startswith(short[session_id] + " ")
    assert "My chosen title" in lines[1] and lines[1].rstrip().endswith("/tmp")
    assert "please read every file" in lines[2] and "…" in lines[2]
    assert lines[2].rstrip().endswith("/project") and "…" in lines[2].split()[-1]


def test_list_json_has_short_ids_and_titles(sessions_cli: SessionsCLI) -> None:
    first = chat_session(sessions_cli.store, "/p/one", "hello   there\nsecond line")
    listed = json.loads(sessions_cli("list", "--json").stdout)
    assert listed[0]["id"] == first
    assert listed[0]["title"] == "hello there second line"
    assert listed[0]["short_id"] == first.rsplit("-", 1)[1][:6]


def test_list_since_limit_and_dir_with_subfolders(sessions_cli: SessionsCLI) -> None:
    top = chat_session(sessions_cli.store, "/work/app", "top")
    sub = chat_session(sessions_cli.store, "/work/app/backend", "sub")
    other = chat_session(sessions_cli.store, "/work/apple", "other")

    def ids(*args: str) -> list[str]:
        result = sessions_cli("list", "--json", *args)
        assert result.returncode == 0, result.stderr
        return [s["id"] for s in json.loads(result.stdout)]

    assert ids("--dir", "/work/app") == [top]
    assert ids("--dir", "/work/app", "--recursive") == [sub, top]  # not /work/apple
    assert ids("--limit", "2") == [other, sub]
    assert ids("--since", "1h") == [other, sub, top]
    assert ids("--since", "2000-01-01") == [other, sub, top]
    assert ids("--since", "2999-01-01") == []
    bad = sessions_cli("list", "--since", "yesterday-ish")
    assert bad.returncode == 2 and "neither a duration" in bad.stderr


def test_short_ids_tell_apart_sessions_made_in_the_same_millisecond() -> None:
    # Same timestamp, same first random digits: the short ids grow only as far as they must.
    ids = [
        "019a93b9-f380-7600-98ff-940e6b99603c",
        "019a93b9-f380-7600-98ff-940e6b11111c",
        "019a93b9-f380-7600-98ff-123456789abc",
        "my-agent.thread_7",
        "an-application-chosen-id-that-is-long",
    ]
    short = shortid.short_ids(ids)
    assert short[ids[0]] == "940e6b9" and short[ids[1]] == "940e6b1"
    assert short[ids[2]] == "123456"
    assert short[ids[3]] == ids[3] and short[ids[4]] == ids[4]  # an application's id is its own short id
    for identifier, text in short.items():
        assert shortid.resolve(text, ids) == identifier
    assert shortid.resolve("019a93b9-f380-7600-98ff-1", ids) == ids[2]  # a prefix of the whole id
    with pytest.raises(shortid.Ambiguous):
        shortid.resolve("940e6b", ids)
    with pytest.raises(shortid.Ambiguous):
        shortid.resolve("019a", ids)


def test_short_ids_work_wherever_an_id_is_taken(sessions_cli: SessionsCLI) -> None:
    session_id = make_session(sessions_cli.store)
    short = json.loads(sessions_cli("list", "--json").stdout)[0]["short_id"]
    for args in (("show", short), ("verify", short), ("export", short), ("fork", short), ("archive", short)):
        result = sessions_cli(*args)
        assert result.returncode == 0, (args, result.stderr)
    assert session_id in sessions_cli("show", short).stdout
    assert session_id[:13] in sessions_cli("show", session_id[:13]).stdout  # prefixes keep working


def test_search_prints_session_event_and_snippet_and_exits_1_on_nothing(sessions_cli: SessionsCLI) -> None:
    with LocalSessionService.open(sessions_cli.store) as service:
        manager = SessionManager.create_new(service, "/p/search", None)
        manager.persist_events(
            [
                UserMessage('why does "make" fail?\nIt says: error E1234 in build.c'),
                ToolCall("t1", "shell", {"command": "cat build.log"}),
                ToolResult("t1", "line 1\nfatal error E1234: missing header\n", True),
                Text("The header is missing."),
            ]
        )
    session_id = manager.session_id
    other = chat_session(sessions_cli.store, "/elsewhere", "nothing to see")
    short = shortid.short_ids([session_id, other])[session_id]

    result = sessions_cli("search", r"E\d{4}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].split()[0] == short and lines[0].split()[2] == "user_message"
    assert "It says: error E1234 in build.c" in lines[0]
    assert "tool_result" in lines[1] and "fatal error E1234: missing header" in lines[1]

    # Quotes and newlines match as the text has them, not as the JSON escapes them.
    assert sessions_cli("search", '"make" fail\\?\\nIt').returncode == 0
    # Keys of the format are not content.
    assert sessions_cli("search", "tool_use_id").returncode == 1
    assert sessions_cli("search", "cat build", "--type", "tool_call").returncode == 0
    assert sessions_cli("search", "E1234", "--type", "text").returncode == 1
    assert sessions_cli("search", "e1234", "-i", "--dir", "/p/search").returncode == 0
    assert sessions_cli("search", "E1234", "--dir", "/elsewhere").returncode == 1
    assert sessions_cli("search", "E1234", "--since", "2999-01-01").returncode == 1
    nothing = sessions_cli("search", "no such words")
    assert (nothing.returncode, nothing.stdout, nothing.stderr) == (1, "", "")

    hits = json.loads(sessions_cli("search", "missing header", "--json").stdout)
    assert [(h["session_id"], h["type"], h["short_id"]) for h in hits] == [(session_id, "tool_result", short)]
    start, end = hits[0]["match"]
    assert hits[0]["snippet"][start:end] == "missing header"
    assert sessions_cli("search", "(unclosed").returncode == 2


@pytest.mark.parametrize(
    ("pattern", "literals"),
    [
        ("error E1234", ["error E1234"]),
        (r"E\d{4}", ["E"]),
        ("foo.*barbaz", ["barbaz"]),
        ("(alpha|beta) release", [" release"]),
        ("alphabet|betamax", ["alphabet", "betamax"]),
        ('say "hi" now', ["say "]),
        (r"path/to\\file", ["path"]),
        (r"\d+", None),
        ("a?b*", None),
        ("(?i)keys", ["ey"]),  # k and s fold outside ASCII too (the Kelvin sign, the long s)
        ("(?i)ks", None),
        ("(?i)error", ["error"]),
        ("(?i)bir problem", ["r problem"]),  # and i (U+0130, U+0131)
        ("(?i:THREAD) ten", ["THREAD"]),  # scanned ignoring case, as the group says
        ('{"a": 1, "b": 22}', [" 22"]),  # JSON punctuation may be spaced differently in an imported file
        ("café au lait", [" au lait"]),
    ],
)
def test_required_literals_are_what_every_match_contains(pattern: str, literals: list[str] | None) -> None:
    assert required_literals(pattern) == literals
    compiled = re.compile(pattern)
    for text in ("error E1234 here", "foo and barbaz", "alpha release", 'say "hi" now', "path/to\\file"):
        if compiled.search(text) and literals is not None:
            assert any(lit.lower() in text.lower() for lit in literals)
