"""Helpers for the sync tests: two store roots that diverge, and what each side sees."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import msgspec

from sessions import LocalSessionService, SessionManager, StoredSession, Text, UserMessage

SYNCTHING_COPY = "{sid}.sync-conflict-20261125-010203-ABCDEF7.jsonl"
DROPBOX_COPY = "{sid} (laptop's conflicted copy 2026-11-25).jsonl"


def open_store(root: Path) -> LocalSessionService:
    return LocalSessionService.open(root, durability="flush")


def new_session(store: LocalSessionService, directory: str, *turns: str) -> str:
    manager = SessionManager.create_new(store, directory=directory)
    manager.persist_events(_conversation(turns))
    return manager.session_id


def continue_session(store: LocalSessionService, session_id: str, *turns: str) -> None:
    """Resume a session and add turns after what it holds (its active branch)."""
    stored = store.get_session(session_id)
    assert stored is not None
    resumed = SessionManager.resume(store, stored)
    resumed.manager.persist_events([*resumed.events, *_conversation(turns)])


def _conversation(turns: tuple[str, ...]) -> list[UserMessage | Text]:
    events: list[UserMessage | Text] = []
    for turn in turns:
        events += [UserMessage(content=turn), Text(content=f"reply to {turn}")]
    return events


def contents(store: LocalSessionService, session_id: str) -> list[str]:
    """The active branch, as the text of each event."""
    return [msgspec.json.decode(e.event_data)["content"] for e in store.load_events(session_id)]


def all_event_ids(store: LocalSessionService, session_id: str) -> list[str]:
    return sorted(e.id for e in store.load_tree(session_id).events)


def raw_event_ids(*paths: Path) -> set[str]:
    """Every event id in the files, read without the library."""
    ids = set()
    for path in paths:
        for line in path.read_bytes().splitlines():
            record = msgspec.json.decode(line)
            if record["k"] == "event":
                ids.add(record["id"])
    return ids


@dataclass(frozen=True)
class View:
    """Everything a user of one store can see, for comparing two machines."""

    sessions: list[StoredSession]
    events: dict[str, list[str]]
    trees: dict[str, tuple[list[str], list[str]]]
    metadata: dict[str, str | None]


def view(store: LocalSessionService, metadata_key: str = "k") -> View:
    sessions = store.list_sessions(include_archived=True)
    return View(
        sessions=sessions,
        events={s.id: [e.id for e in store.load_events(s.id)] for s in sessions},
        trees={s.id: (all_event_ids(store, s.id), store.load_tree(s.id).heads) for s in sessions},
        metadata={s.id: store.get_metadata(s.id, metadata_key) for s in sessions},
    )


def clone(src: Path, dst: Path) -> None:
    """A second machine that got the store once (logs only: the rest is machine-local)."""
    shutil.copytree(src / "sessions", dst / "sessions")
