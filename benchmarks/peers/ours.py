"""This library, used as an application would: a service and a :class:`SessionManager`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.peers.base import Persist, SessionSpec, manager_persister, manager_resumer, write_history
from sessions import ConversationEvent, LocalSessionService, SessionManager

__all__ = ["OursPeer"]


class _OursStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.service = LocalSessionService.open(root)

    def find_resumable(self, directory: str, git_root: str | None, max_age_secs: float) -> str | None:
        found = self.service.find_resumable(directory, git_root, max_age_secs)
        return found.id if found is not None else None

    def list_sessions(self) -> int:
        return len(self.service.list_sessions())

    def verify_all(self) -> int:
        bad = 0
        for name in os.listdir(self.service.sessions_dir):
            if not self.service.verify(name.removesuffix(".jsonl")).ok:
                bad += 1
        return bad

    def reindex(self) -> None:
        # The index is a disposable cache: dropping it (whatever files it is made of) and listing rebuilds it.
        self.service.close()
        self.service = LocalSessionService.open(self.root)
        self.service.drop_index()
        self.service.list_sessions(include_archived=True)
        self.service.close()

    def close(self) -> None:
        self.service.close()


class OursPeer:
    name = "jsonl-sessions"
    description = "this library: LocalSessionService + SessionManager"

    def persister(self, root: Path, durability: str) -> Persist:
        return manager_persister(LocalSessionService.open(root, durability=durability))

    def resumer(self, root: Path, events: list[ConversationEvent]) -> Callable[[], list[Any]]:
        service = LocalSessionService.open(root, durability="flush")
        session_id = write_history(service, events)
        service.close()  # save the index, as an application leaving would
        return manager_resumer(service, session_id)

    def populate(self, root: Path, specs: list[SessionSpec]) -> None:
        with LocalSessionService.open(root, durability="flush") as service:
            for spec in specs:
                service.create_session(spec.id, spec.directory, spec.git_root)
                manager = SessionManager.resume(service, _stored(service, spec.id)).manager
                manager.persist_events(spec.events)
                for key, value in spec.metadata.items():
                    service.set_metadata(spec.id, key, value)
                if spec.archived:
                    service.archive(spec.id)

    def open_store(self, root: Path) -> _OursStore:
        return _OursStore(root)


def _stored(service: LocalSessionService, session_id: str) -> Any:
    stored = service.get_session(session_id)
    assert stored is not None
    return stored
