"""The store against an in-memory model, through any sequence of manager operations."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sessions import EventBase, LocalSessionService, SessionManager, serialize_event
from tests.support.strategies import events

DIRECTORIES = ["/a", "/b", None]


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="store-machine-"))
        self.service = LocalSessionService.open(self.root, durability="flush")
        self.managers: list[SessionManager] = []
        self.histories: dict[str, list[EventBase]] = {}
        """What each manager's application holds, by the manager's current session id."""
        self.persisted: dict[str, list[EventBase]] = {}
        """The model: what must be on disk, by session id."""
        self.metadata: dict[str, dict[str, str]] = {}
        self.archived: set[str] = set()

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    @rule(directory=st.sampled_from(DIRECTORIES))
    def create(self, directory: str | None) -> None:
        manager = SessionManager.create_new(self.service, directory, None)
        self.managers.append(manager)
        self.histories[manager.session_id] = []

    @precondition(lambda self: self.managers)
    @rule(data=st.data(), new=st.lists(events, max_size=4))
    def persist(self, data: st.DataObject, new: list[EventBase]) -> None:
        manager = data.draw(st.sampled_from(self.managers))
        history = self.histories[manager.session_id]
        history += new
        manager.persist_events(history)
        if history:
            self.persisted[manager.session_id] = list(history)

    @precondition(lambda self: self.managers)
    @rule(data=st.data(), key=st.sampled_from(["tracker", "permissions", "ключ"]), value=st.text(max_size=30))
    def set_metadata(self, data: st.DataObject, key: str, value: str) -> None:
        manager = data.draw(st.sampled_from(self.managers))
        manager.set_metadata(key, value)
        self.metadata.setdefault(manager.session_id, {})[key] = value
        self.persisted.setdefault(manager.session_id, list(self.histories[manager.session_id]))

    @precondition(lambda self: self.managers)
    @rule(data=st.data())
    def archive_and_reset(self, data: st.DataObject) -> None:
        manager = data.draw(st.sampled_from(self.managers))
        old = manager.session_id
        manager.archive_and_reset()
        if old in self.persisted:
            self.archived.add(old)
        self.histories[manager.session_id] = []

    @precondition(lambda self: self.managers)
    @rule(data=st.data())
    def resume(self, data: st.DataObject) -> None:
        """Throw a manager away and resume its session, as a restarted application would."""
        index = data.draw(st.integers(0, len(self.managers) - 1))
        session_id = self.managers[index].session_id
        stored = self.service.get_session(session_id)
        if stored is None:
            return  # never written: nothing to resume
        resumed = SessionManager.resume(self.service, stored)
        assert resumed.events == self.persisted[session_id]
        self.managers[index] = resumed.manager
        self.histories[session_id] = list(resumed.events)

    @rule()
    def reopen_service(self) -> None:
        """A new process: a fresh service on the same root, every manager resumed through it."""
        self.service.close()
        self.service = LocalSessionService.open(self.root, durability="flush")
        reopened = []
        for manager in self.managers:
            stored = self.service.get_session(manager.session_id)
            if stored is None:
                reopened.append(SessionManager.create_new(self.service, None, None))
                self.histories[reopened[-1].session_id] = []
            else:
                reopened.append(SessionManager.resume(self.service, stored).manager)
        self.managers = reopened

    @invariant()
    def disk_matches_the_model(self) -> None:
        listed = {s.id: s for s in self.service.list_sessions(include_archived=True)}
        assert set(listed) == set(self.persisted)
        for session_id, expected in self.persisted.items():
            loaded = self.service.load_events(session_id)
            ids = [e.id for e in loaded]
            assert len(ids) == len(set(ids))
            assert [e.parent_id for e in loaded] == [None, *ids[:-1]][: len(ids)]
            assert [(e.event_type, e.event_data) for e in loaded] == [serialize_event(e) for e in expected]
            stored = listed[session_id]
            assert stored.head_id == (ids[-1] if ids else None)
            assert (stored.archived_at is not None) == (session_id in self.archived)
            for key, value in self.metadata.get(session_id, {}).items():
                assert self.service.get_metadata(session_id, key) == value


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
