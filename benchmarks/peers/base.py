"""What every peer offers the harness: a store to persist into, resume from, and search."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sessions import ConversationEvent, SessionManager, SessionService

__all__ = ["Peer", "Persist", "SessionSpec", "Store", "manager_persister", "manager_resumer", "write_history"]

Persist = Callable[[list[ConversationEvent]], Callable[[], None]]
"""Given the next turn, return the call that persists it (only that call is timed)."""

PROJECT = "/work/project"


def manager_persister(service: SessionService) -> Persist:
    """Persist turns through a :class:`SessionManager` on ``service``, as an application does."""
    manager = SessionManager.create_new(service, PROJECT, PROJECT)
    history: list[ConversationEvent] = []

    def prepare(turn: list[ConversationEvent]) -> Callable[[], None]:
        history.extend(turn)
        return lambda: manager.persist_events(history)

    return prepare


def write_history(service: SessionService, events: list[ConversationEvent]) -> str:
    """Persist ``events`` as one session, 1,000 at a time; return its id."""
    manager = SessionManager.create_new(service, PROJECT, PROJECT)
    for end in range(1000, len(events) + 1000, 1000):
        manager.persist_events(events[:end])
    return manager.session_id


def manager_resumer(service: SessionService, session_id: str) -> Callable[[], list[Any]]:
    """The call that resumes ``session_id`` through a :class:`SessionManager` (the timed part)."""
    stored = service.get_session(session_id)
    assert stored is not None

    def resume() -> list[Any]:
        return SessionManager.resume(service, stored).events

    return resume


@dataclass
class SessionSpec:
    """One session of a populated store, identical for every peer."""

    id: str
    directory: str
    git_root: str | None
    events: list[ConversationEvent]
    metadata: dict[str, str] = field(default_factory=dict)
    archived: bool = False


class Store(Protocol):
    """A populated store of many sessions."""

    def find_resumable(self, directory: str, git_root: str | None, max_age_secs: float) -> str | None: ...
    def list_sessions(self) -> int: ...
    def verify_all(self) -> int: ...
    def reindex(self) -> None: ...
    def close(self) -> None: ...


class Peer(Protocol):
    """One way of storing sessions.

    A method a peer cannot offer (eventsourcing has no query by directory)
    raises :class:`NotImplementedError` with the reason.
    """

    name: str
    description: str

    def persister(self, root: Path, durability: str) -> Persist: ...
    def resumer(self, root: Path, events: list[ConversationEvent]) -> Callable[[], list[Any]]: ...
    def populate(self, root: Path, specs: list[SessionSpec]) -> None: ...
    def open_store(self, root: Path) -> Store: ...
