"""Format compatibility with the previous release (issue #10, item 7).

The previous release is commit ``0a09130`` ("reliability: the two cut-and-regrow
tests share their setup"): the last one before the store rebuild and the new
records (the ``compaction`` event type, rewind head records ``k: "head"``, fork
headers with ``forked_from`` / ``fork_event_id``, the index and trash files).
Its ``eventlog/`` and ``sessions/`` packages are taken from git into a temporary
folder and run in a subprocess of this interpreter, so the two releases really
read each other's files. Without git history or that commit the tests skip;
CI runs in a full clone of main, which has both.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sessions import Compaction, LocalSessionService, SessionManager, Text, UserMessage

PREVIOUS_RELEASE = "0a09130"
REPO_ROOT = Path(__file__).resolve().parents[2]

# Runs under the OLD code (PYTHONPATH = its folder, cwd = its folder). Prints, for every
# session of the store, what the old service says of it, and which files its modules came from.
OLD_READER = """
import json, sys, warnings
from pathlib import Path
import msgspec
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from sessions import LocalSessionService
    out = {}
    with LocalSessionService.open(Path(sys.argv[1])) as store:
        for sid in store.session_ids():
            report = store.verify(sid)
            out[sid] = {
                "session": msgspec.to_builtins(store.get_session(sid)),
                "events": [
                    {"id": e.id, "type": e.event_type, "data": json.loads(e.event_data)}
                    for e in store.load_events(sid)
                ],
                "typed": [type(e).__name__ for e in store.load_conversation(sid).events],
                "metadata": store.get_metadata(sid, "k"),
                "listed": sid in {s.id for s in store.list_sessions(include_archived=True)},
                "verify": {
                    "ok": report.ok,
                    "heads": report.heads,
                    "findings": sorted(f.kind for f in report.findings),
                    "unknown_types": report.unknown_types,
                },
            }
modules = sorted(m.__file__ or "" for n, m in sys.modules.items() if n.split(".")[0] in ("sessions", "eventlog"))
print(json.dumps({"sessions": out, "modules": modules, "warnings": [str(w.message) for w in caught]}))
"""

# Runs under the OLD code: writes a session the way the previous release did, and prints its own view of it.
OLD_WRITER = """
import json, sys
from pathlib import Path
import msgspec
from sessions import LocalSessionService, SessionManager, Text, UserMessage
with LocalSessionService.open(Path(sys.argv[1])) as store:
    manager = SessionManager.create_new(store, "/proj", "/proj")
    manager.persist_events([UserMessage("hello"), Text("hi"), UserMessage("again"), Text("sure")])
    manager.set_metadata("k", "v")
    manager.persist_server_session_id("srv-old")
    sid = manager.session_id
    print(json.dumps({
        "id": sid,
        "session": msgspec.to_builtins(store.get_session(sid)),
        "events": [msgspec.to_builtins(e) for e in store.load_events(sid)],
        "modules": sorted(
            m.__file__ or "" for n, m in sys.modules.items() if n.split(".")[0] in ("sessions", "eventlog")
        ),
    }))

"""


@pytest.fixture(scope="module")
def old_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's ``eventlog`` and ``sessions`` packages, extracted from git into a folder."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed: the previous release is taken from git history")
    probe = subprocess.run(
        [git, "-C", str(REPO_ROOT), "cat-file", "-e", f"{PREVIOUS_RELEASE}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"commit {PREVIOUS_RELEASE} (the previous release) is not in this checkout's git history")
    archive = subprocess.run(
        [git, "-C", str(REPO_ROOT), "archive", PREVIOUS_RELEASE, "eventlog", "sessions"],
        capture_output=True,
        check=True,
    )
    folder = tmp_path_factory.mktemp("previous-release")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    assert (folder / "sessions" / "service.py").is_file()  # the old layout, not this checkout's
    return folder


def run_old(old: Path, script: str, *args: str) -> dict[str, Any]:
    """Run ``script`` with the previous release's packages (and this venv's dependencies), return its JSON."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP"}}
    env["PYTHONPATH"] = str(old)
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=old,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"the previous release failed:\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout)
    # Every module of the two packages came from the extracted release, none from this checkout.
    assert result["modules"], "the old code was not imported"
    assert all(Path(m).is_relative_to(old) for m in result["modules"]), result["modules"]
    return result


def event_view(store: LocalSessionService, session_id: str) -> list[dict[str, Any]]:
    return [{"id": e.id, "type": e.event_type, "data": json.loads(e.event_data)} for e in store.load_events(session_id)]


def logged_events(path: Path) -> dict[str, dict[str, Any]]:
    """Every event line of a log, by id: what the log holds."""
    events: dict[str, dict[str, Any]] = {}
    for line in path.read_bytes().splitlines():
        record = json.loads(line)
        if record["k"] == "event":
            events.setdefault(record["id"], {"id": record["id"], "type": record["type"], "data": record["data"]})
    return events


def log_bytes(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "sessions").iterdir())}


def test_previous_release_reads_logs_with_the_new_records(old_release: Path, tmp_path: Path) -> None:
    """The previous release loads every session of a store holding every new record, without raising.

    What it sees:

    - A ``compaction`` event is an event of a type it does not know: ``load_events``
      returns its stored type and data, and ``load_conversation`` types it ``UnknownEvent``.
    - A fork's header has two fields it does not know; it loads the fork's events
      (all of them, the same as this release), its ``updated_at`` is the header's
      time (this release: the last event's), and it has no ``forked_from``.
    - A rewound log: it does not know head records (``k: "head"``). It skips that
      line (``verify`` reports it as ``unknown_kind``, not damage) and orders the
      events by parent links alone, whose active head is the deepest leaf (ties to
      the greater id). So it shows the DEEPEST branch, whichever was rewound away:
      when the abandoned branch is deeper than the one continued after the rewind,
      it shows the abandoned branch (``head_id`` its tip, ``updated_at`` its tip's
      time); when the continued branch is deeper, it shows the same conversation as
      this release. Either way ``event_count`` counts every event in the log, and
      ``verify`` lists both tips as heads, the deepest first. Nothing is lost or
      rewritten: the abandoned events stay in the log for both releases.
    """
    root = tmp_path / "store"
    with LocalSessionService.open(root) as store:
        # A straight session with no new record (facts included).
        plain = SessionManager.create_new(store, "/proj", "/proj")
        plain.persist_events([UserMessage("p1"), Text("p2")])
        plain.set_metadata("k", "v")
        plain.persist_server_session_id("srv-plain")

        # Rewound, abandoned branch deeper: q1 a1 C q2 a2 q3 a3, rewind to C, then q4 a4.
        rewound = SessionManager.create_new(store, "/proj", "/proj")
        conversation = [
            UserMessage("q1"),
            Text("a1"),
            Compaction(summary="the story so far", tokens_before=1234),
            UserMessage("q2"),
            Text("a2"),
            UserMessage("q3"),
            Text("a3"),
        ]
        rewound.persist_events(conversation)
        rewound.set_metadata("k", "rewound")
        rewound.persist_server_session_id("srv-rewound")
        abandoned = [e["id"] for e in event_view(store, rewound.session_id)]
        compaction_id = abandoned[2]
        conversation = [*rewound.rewind(compaction_id), UserMessage("q4"), Text("a4")]
        rewound.persist_events(conversation)
        continued = [e["id"] for e in event_view(store, rewound.session_id)]
        assert continued[:3] == abandoned[:3] and len(continued) == 5  # the current release shows q1 a1 C q4 a4

        # Rewound, continued branch deeper: r1 r2 r3 r4, rewind to r2, then r5 r6 r7 r8.
        regrown = SessionManager.create_new(store, "/proj", None)
        conversation = [UserMessage("r1"), Text("r2"), UserMessage("r3"), Text("r4")]
        regrown.persist_events(conversation)
        conversation = [*regrown.rewind(event_view(store, regrown.session_id)[1]["id"])]
        conversation += [UserMessage("r5"), Text("r6"), UserMessage("r7"), Text("r8")]
        regrown.persist_events(conversation)

        # A fork of the rewound session at q4 (its header names where it came from).
        fork = store.fork_session(rewound.session_id, continued[3])
        assert fork.forked_from == rewound.session_id and fork.fork_event_id == continued[3]

        # A deleted session: its log goes to the trash, not a log of the store.
        gone = SessionManager.create_new(store, "/proj", "/proj")
        gone.persist_events([UserMessage("bye")])
        store.delete_session(gone.session_id)

        live = set(store.session_ids())
        current = {sid: event_view(store, sid) for sid in live}
        current_sessions = {sid: msgspec.to_builtins(store.get_session(sid)) for sid in live}

    assert live == {plain.session_id, rewound.session_id, regrown.session_id, fork.id}
    head_lines = [
        line
        for line in (root / "sessions" / f"{rewound.session_id}.jsonl").read_bytes().splitlines()
        if b'"k":"head"' in line
    ]
    assert len(head_lines) == 1
    fork_header = json.loads((root / "sessions" / f"{fork.id}.jsonl").read_bytes().splitlines()[0])
    assert {"forked_from", "fork_event_id"} <= fork_header["data"].keys()
    before = log_bytes(root)

    result = run_old(old_release, OLD_READER, str(root))
    old = result["sessions"]
    assert result["warnings"] == []

    # Every live session, and only those, loads with the old code; each event it returns is in the log as such.
    assert set(old) == live
    for sid, seen in old.items():
        in_log = logged_events(root / "sessions" / f"{sid}.jsonl")
        assert seen["events"], sid
        assert [e["id"] for e in seen["events"]] == list(dict.fromkeys(e["id"] for e in seen["events"]))
        for event in seen["events"]:
            assert event == in_log[event["id"]]
        assert seen["listed"]
        assert seen["verify"]["ok"], seen["verify"]

    # A log with no new record: the same events and session as the current release.
    same_fields = {k: v for k, v in current_sessions[plain.session_id].items() if k in old[plain.session_id]["session"]}
    assert old[plain.session_id]["session"] == same_fields
    assert old[plain.session_id]["events"] == current[plain.session_id]
    assert old[plain.session_id]["metadata"] == "v"

    # The compaction event: its stored type and data, typed UnknownEvent by the old code.
    rewound_old = old[rewound.session_id]
    compaction = rewound_old["events"][2]
    assert compaction == {
        "id": compaction_id,
        "type": "compaction",
        "data": {"summary": "the story so far", "tokens_before": 1234},
    }
    assert rewound_old["typed"] == ["UserMessage", "Text", "UnknownEvent", "UserMessage", "Text", "UserMessage", "Text"]
    assert rewound_old["verify"]["unknown_types"] == {"compaction": 1}

    # The rewound log whose abandoned branch is deeper: the old code shows the abandoned branch.
    assert [e["id"] for e in rewound_old["events"]] == abandoned
    assert [e["id"] for e in current[rewound.session_id]] == continued != abandoned
    session = rewound_old["session"]
    assert session["head_id"] == abandoned[-1]
    assert session["event_count"] == 9  # every event in the log (7 + 2), not the branch
    assert session["updated_at"] == json.loads(before[f"{rewound.session_id}.jsonl"].splitlines()[7])["ts"]
    assert session["server_session_id"] == "srv-rewound"
    assert rewound_old["metadata"] == "rewound"
    assert rewound_old["verify"]["heads"] == [abandoned[-1], continued[-1]]
    assert rewound_old["verify"]["findings"] == ["unknown_kind", "unknown_type"]

    # The rewound log whose continued branch is deeper: the old code shows what the current one does.
    regrown_old = old[regrown.session_id]
    assert regrown_old["events"] == current[regrown.session_id]
    assert [e["data"]["content"] for e in regrown_old["events"]] == ["r1", "r2", "r5", "r6", "r7", "r8"]
    assert regrown_old["session"]["head_id"] == current_sessions[regrown.session_id]["head_id"]
    assert regrown_old["session"]["event_count"] == 8
    assert regrown_old["verify"]["findings"] == ["unknown_kind"]

    # The fork: its events (q1 a1 C q4, the compaction included), without the fields the old release lacks.
    fork_old = old[fork.id]
    assert fork_old["events"] == current[fork.id] == current[rewound.session_id][:4]
    assert fork_old["typed"] == ["UserMessage", "Text", "UnknownEvent", "UserMessage"]
    fork_session = fork_old["session"]
    assert "forked_from" not in fork_session and "fork_event_id" not in fork_session
    for field in ("id", "directory", "git_root", "server_session_id", "created_at", "archived_at", "head_id"):
        assert fork_session[field] == current_sessions[fork.id][field], field
    assert fork_session["event_count"] == 4
    assert fork_session["updated_at"] == current_sessions[fork.id]["created_at"]  # the header's time

    # The old code rewrote no log, and the current release reads the store as before (its old index files aside).
    assert log_bytes(root) == before
    with LocalSessionService.open(root) as store:
        assert {sid: event_view(store, sid) for sid in store.session_ids()} == current
        assert store.get_session(fork.id) is not None
        assert [t.id for t in store.list_trash()] == [gone.session_id]


def test_current_release_reads_logs_of_the_previous_release(old_release: Path, tmp_path: Path) -> None:
    """A log the previous release wrote loads unchanged: same events, session, metadata, server id; verifies clean."""
    root = tmp_path / "store"
    written = run_old(old_release, OLD_WRITER, str(root))
    sid = written["id"]
    before = log_bytes(root)
    assert list(before) == [f"{sid}.jsonl"]

    with LocalSessionService.open(root) as store:
        assert store.session_ids() == [sid]
        session = store.get_session(sid)
        assert session is not None
        now = msgspec.to_builtins(session)
        assert {k: now[k] for k in written["session"]} == written["session"]
        assert now["forked_from"] is None and now["fork_event_id"] is None
        assert session.server_session_id == "srv-old"
        assert store.get_metadata(sid, "k") == "v"
        assert [msgspec.to_builtins(e) for e in store.load_events(sid)] == written["events"]
        assert [e.event_type for e in store.load_events(sid)] == ["user_message", "text", "user_message", "text"]
        assert [type(e).__name__ for e in store.load_conversation(sid).events] == [
            "UserMessage",
            "Text",
            "UserMessage",
            "Text",
        ]
        report = store.verify(sid)
        assert report.ok
        assert report.findings == []
        assert report.unknown_types == {}
        assert [s.id for s in store.list_sessions()] == [sid]

    assert log_bytes(root) == before
