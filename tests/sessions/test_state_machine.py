"""The file store against the in-memory model, through any sequence of manager and service operations.

Every operation runs twice, once on :class:`LocalSessionService` and once on the
model (``tests/support/model.py``), each through its own :class:`SessionManager`;
the invariants compare what the two hold. Event and fork ids are generated on
each side, so sessions are paired through ``twin`` and events compared by
position, type and data.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from eventlog import new_id
from sessions import (
    Compaction,
    EventBase,
    LocalSessionService,
    SessionManager,
    StoredEvent,
    StoredSession,
    UserMessage,
)
from tests.support.model import InMemorySessionService
from tests.support.strategies import compactions, conversation_events

DIRECTORIES = ["/a", "/b", None]
KEYS = ["tracker", "permissions", "ключ"]
WINDOWS = [(None, False), (1, False), (3, False), (None, True), (2, True)]
"""``(last, from_compaction)`` for resumes and for the invariant's windows."""


@dataclass
class Pair:
    """One application's manager on each side, and the conversation the application holds."""

    file: SessionManager
    model: SessionManager
    history: list[EventBase]


def _content(events: list[StoredEvent]) -> list[tuple[str, str]]:
    return [(e.event_type, e.event_data) for e in events]


def _position(data: st.DataObject, branch: list[StoredEvent]) -> int | None:
    """A random event of ``branch`` (its index), or None (the start)."""
    return data.draw(st.none() | st.integers(0, len(branch) - 1)) if branch else None


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="store-machine-"))
        self.file = LocalSessionService.open(self.root, durability="flush")
        self.model = InMemorySessionService()
        self.pairs: list[Pair] = []
        self.twin: dict[str, str] = {}
        """The model's id of each file-store session."""
        self.forks: dict[str, tuple[str | None, str | None]] = {}
        """Each fork's ``fork_event_id`` as it must stay: (file store's, model's), by file-store id."""
        self.seen: dict[str, set[str]] = {}
        """Every event id ever on a session's active branch in the file store: abandoned ones stay in the tree."""

    def teardown(self) -> None:
        self.file.close()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------

    def _live(self) -> list[str]:
        return sorted(s.id for s in self.file.list_sessions(include_archived=True))

    def _resumed_pair(self, file_stored: StoredSession, model_stored: StoredSession | None) -> Pair:
        assert model_stored is not None
        file_side = SessionManager.resume(self.file, file_stored)
        model_side = SessionManager.resume(self.model, model_stored)
        assert file_side.events == model_side.events
        return Pair(file_side.manager, model_side.manager, list(file_side.events))

    def _branches(self, session_id: str) -> tuple[list[StoredEvent], list[StoredEvent]]:
        branch = self.file.load_events(session_id)
        model_branch = self.model.load_events(self.twin[session_id])
        assert _content(branch) == _content(model_branch)
        return branch, model_branch

    def _note_rewind(self, pair: Pair, now: list[EventBase]) -> None:
        pair.history = list(now)

    def _new_pair(self, directory: str | None) -> Pair:
        session_id = new_id()
        self.twin[session_id] = session_id
        return Pair(
            SessionManager(self.file, session_id, directory=directory, git_root=None, created=False),
            SessionManager(self.model, session_id, directory=directory, git_root=None, created=False),
            [],
        )

    # -- rules --------------------------------------------------------------------------

    @rule(directory=st.sampled_from(DIRECTORIES))
    def create(self, directory: str | None) -> None:
        self.pairs.append(self._new_pair(directory))

    @precondition(lambda self: self.pairs)
    @rule(data=st.data(), new=st.lists(conversation_events, max_size=4))
    def persist(self, data: st.DataObject, new: list[EventBase]) -> None:
        pair = data.draw(st.sampled_from(self.pairs))
        pair.history += new
        pair.file.persist_events(pair.history)
        pair.model.persist_events(pair.history)

    @precondition(lambda self: self.pairs)
    @rule(data=st.data(), compaction=compactions)
    def compact(self, data: st.DataObject, compaction: Compaction) -> None:
        """Persist a compaction checkpoint (what an agent writes when it summarizes)."""
        pair = data.draw(st.sampled_from(self.pairs))
        pair.history.append(compaction)
        pair.file.persist_events(pair.history)
        pair.model.persist_events(pair.history)

    @precondition(lambda self: self.pairs)
    @rule(data=st.data(), key=st.sampled_from(KEYS), value=st.text(max_size=30))
    def set_metadata(self, data: st.DataObject, key: str, value: str) -> None:
        pair = data.draw(st.sampled_from(self.pairs))
        pair.file.set_metadata(key, value)
        pair.model.set_metadata(key, value)

    @precondition(lambda self: self.pairs)
    @rule(data=st.data())
    def archive_and_reset(self, data: st.DataObject) -> None:
        pair = data.draw(st.sampled_from(self.pairs))
        pair.file.archive_and_reset()
        pair.model.archive_and_reset()
        self.twin[pair.file.session_id] = pair.model.session_id
        pair.history = []

    @precondition(lambda self: self.pairs)
    @rule(data=st.data(), window=st.sampled_from(WINDOWS))
    def resume(self, data: st.DataObject, window: tuple[int | None, bool]) -> None:
        """Throw a pair away and resume its session (with a window, maybe), as a restarted application would."""
        index = data.draw(st.integers(0, len(self.pairs) - 1))
        pair = self.pairs[index]
        stored = self.file.get_session(pair.file.session_id)
        model_stored = self.model.get_session(pair.model.session_id)
        if stored is None:
            assert model_stored is None
            return  # never written: nothing to resume
        assert model_stored is not None
        last, from_compaction = window
        file_side = SessionManager.resume(self.file, stored, last=last, from_compaction=from_compaction)
        model_side = SessionManager.resume(self.model, model_stored, last=last, from_compaction=from_compaction)
        assert file_side.events == model_side.events
        self.pairs[index] = Pair(file_side.manager, model_side.manager, list(file_side.events))

    @precondition(lambda self: self.pairs)
    @rule(data=st.data())
    def rewind(self, data: st.DataObject) -> None:
        """Rewind a manager to a random event of its conversation, or to the start."""
        pair = data.draw(st.sampled_from(self.pairs))
        branch: list[StoredEvent] = []
        model_branch: list[StoredEvent] = []
        if self.file.get_session(pair.file.session_id) is not None:
            branch, model_branch = self._branches(pair.file.session_id)
        at = _position(data, branch)
        now = pair.file.rewind(branch[at].id if at is not None else None)
        assert pair.model.rewind(model_branch[at].id if at is not None else None) == now
        assert len(now) == (at + 1 if at is not None else 0)
        self._note_rewind(pair, now)

    @precondition(lambda self: self.pairs)
    @rule(data=st.data())
    def pop(self, data: st.DataObject) -> None:
        pair = data.draw(st.sampled_from(self.pairs))
        now = pair.file.pop()
        assert pair.model.pop() == now
        self._note_rewind(pair, now)

    @precondition(lambda self: self._live())
    @rule(data=st.data())
    def fork(self, data: st.DataObject) -> None:
        """Fork a session at a random event of its active branch (or its head); the fork gets a pair of its own."""
        source = data.draw(st.sampled_from(self._live()))
        branch, model_branch = self._branches(source)
        at = _position(data, branch)
        forked = self.file.fork_session(source, branch[at].id if at is not None else None)
        model_forked = self.model.fork_session(self.twin[source], model_branch[at].id if at is not None else None)
        end = at if at is not None else len(branch) - 1
        expected = (branch[end].id, model_branch[end].id) if branch else (None, None)
        assert (forked.forked_from, forked.fork_event_id) == (source, expected[0])
        assert (model_forked.forked_from, model_forked.fork_event_id) == (self.twin[source], expected[1])
        self.twin[forked.id] = model_forked.id
        self.forks[forked.id] = expected
        self.pairs.append(self._resumed_pair(forked, model_forked))
        assert _content(self.file.load_events(forked.id)) == _content(branch[: end + 1])

    @precondition(lambda self: self._live())
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        """Delete a session; the applications that held it let it go."""
        session_id = data.draw(st.sampled_from(self._live()))
        self.file.delete_session(session_id)
        self.model.delete_session(self.twin[session_id])
        self.pairs = [p for p in self.pairs if p.file.session_id != session_id]

    @precondition(lambda self: self.file.list_trash())
    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        """Restore a deleted session, and resume it."""
        session_id = data.draw(st.sampled_from(sorted({t.id for t in self.file.list_trash()})))
        self.file.restore_session(session_id)
        self.model.restore_session(self.twin[session_id])
        stored = self.file.get_session(session_id)
        assert stored is not None
        self.pairs.append(self._resumed_pair(stored, self.model.get_session(self.twin[session_id])))

    @rule()
    def reopen_service(self) -> None:
        """A new process: a fresh file service on the same root, every pair resumed (the model's too)."""
        self.file.close()
        self.file = LocalSessionService.open(self.root, durability="flush")
        reopened = []
        for pair in self.pairs:
            stored = self.file.get_session(pair.file.session_id)
            if stored is None:
                reopened.append(self._new_pair(None))
            else:
                reopened.append(self._resumed_pair(stored, self.model.get_session(pair.model.session_id)))
        self.pairs = reopened

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def file_store_matches_the_model(self) -> None:
        files = {s.id: s for s in self.file.list_sessions(include_archived=True)}
        models = {s.id: s for s in self.model.list_sessions(include_archived=True)}
        assert {self.twin[i] for i in files} == set(models)
        for session_id, stored in files.items():
            model_stored = models[self.twin[session_id]]
            branch, model_branch = self._branches(session_id)
            for loaded, session in ((branch, stored), (model_branch, model_stored)):
                ids = [e.id for e in loaded]
                assert len(ids) == len(set(ids))
                assert [e.parent_id for e in loaded] == [None, *ids[:-1]][: len(ids)]
                assert session.head_id == (ids[-1] if ids else None)
            for last, from_compaction in [*WINDOWS, (0, False), (0, True)]:
                window = self.file.load_events(session_id, last=last, from_compaction=from_compaction)
                model_window = self.model.load_events(model_stored.id, last=last, from_compaction=from_compaction)
                assert _content(window) == _content(model_window)
                assert window == branch[len(branch) - len(window) :]  # a window is the branch's tail
            fields = (stored.directory, stored.git_root, stored.server_session_id, stored.archived_at is None)
            assert fields == (
                model_stored.directory,
                model_stored.git_root,
                model_stored.server_session_id,
                model_stored.archived_at is None,
            )
            # event_count: the model counts its (only) branch; the file store every event its log keeps.
            tree = self.file.load_tree(session_id)
            assert model_stored.event_count == len(model_branch)
            assert len(tree.events) >= len(branch)
            assert stored.event_count == len(tree.events)
            seen = self.seen.setdefault(session_id, set())
            seen.update(e.id for e in branch)
            assert seen <= {e.id for e in tree.events}, "an abandoned event left the tree"
            assert (self.twin[stored.forked_from] if stored.forked_from else None) == model_stored.forked_from
            assert (stored.fork_event_id, model_stored.fork_event_id) == self.forks.get(session_id, (None, None))
            for key in KEYS:
                assert self.file.get_metadata(session_id, key) == self.model.get_metadata(model_stored.id, key)
        trash = sorted(self.twin[t.id] for t in self.file.list_trash())
        assert trash == sorted(t.id for t in self.model.list_trash())


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


def test_event_count_after_a_rewind_to_the_start(tmp_path: Path) -> None:
    """A rewind to the empty conversation keeps the events: they still count (the machine found this)."""
    service = LocalSessionService.open(tmp_path, durability="flush")
    manager = SessionManager.create_new(service, "/p", None)
    manager.persist_events([UserMessage("a")])
    counts = []
    assert manager.pop() == []
    counts.append(service.get_session(manager.session_id))
    manager.persist_events([UserMessage("b")])
    counts.append(service.get_session(manager.session_id))
    service.drop_index()
    counts.append(service.get_session(manager.session_id))
    assert [s.event_count if s is not None else None for s in counts] == [1, 2, 2]
