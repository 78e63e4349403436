"""LangGraph threads as sessions: which session holds a thread, appending to it, and replacing its events."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Final

import msgspec

from eventlog import new_id, utcnow
from sessions.errors import InvalidSessionId, SessionConflict, SessionExists, SessionNotFound
from sessions.integrations._langgraph_events import THREAD_KEY, mapped_session_id
from sessions.models import SessionBatch, StoredEvent, StoredSession
from sessions.protocol import check_session_id
from sessions.store import LocalSessionService

__all__ = ["FRAMEWORK_LABEL", "ThreadLogs", "candidate_session_ids", "thread_labels"]

FRAMEWORK_LABEL: Final = {"framework": "langgraph"}
"""The label every thread session is created with: ``list_sessions(labels=FRAMEWORK_LABEL)`` finds them all."""

_APPEND_ATTEMPTS: Final = 8
"""Appends retried after another process moved the thread's head (each retry reads the new head, nothing else)."""

Select = Callable[[list[StoredEvent]], list[StoredEvent] | None]


def thread_labels(thread_id: str) -> dict[str, str]:
    """A thread session's labels: :data:`FRAMEWORK_LABEL` and the thread id, both read from the index alone."""
    return {**FRAMEWORK_LABEL, THREAD_KEY: thread_id}


def candidate_session_ids(thread_id: str) -> list[str]:
    """The session ids a thread may have, in the order they are tried: itself if valid, then a uuid5 of it."""
    mapped = mapped_session_id(thread_id)
    try:
        direct = check_session_id(thread_id)
    except InvalidSessionId:
        return [mapped]
    return [direct] if direct == mapped else [direct, mapped]


class ThreadLogs:
    """The session logs of LangGraph threads in one store, with what one saver remembers of them.

    Safe to share between threads: appends to one session take turns on a lock of this object
    (LangGraph puts a step's writes from several worker threads at once), and the store's own
    head check keeps other processes' appends apart.
    """

    def __init__(self, store: LocalSessionService) -> None:
        self.store = store
        self._invocation_id = new_id()
        self._sessions: dict[str, str] = {}
        """Thread id -> its session id, once found."""
        self._heads: dict[str, str | None] = {}
        """Session id -> its head after this object's last append (a cache: a conflict refreshes it)."""
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def session_id(self, thread_id: str) -> str | None:
        """The id of the session holding a thread, or None if the thread has nothing stored.

        The first candidate (:func:`candidate_session_ids`) that is the thread's session (see :meth:`thread_of`).
        """
        found = self._sessions.get(thread_id)
        if found is None:
            found = next((sid for sid in candidate_session_ids(thread_id) if self._holds(sid, thread_id)), None)
            if found is not None:
                self._sessions[thread_id] = found
        return found

    def thread_ids(self) -> list[str]:
        """The threads stored, most recently updated first.

        Answered from the store's index (the labels), reading no log, but for sessions without labels.
        """
        found = []
        for session in self.store.list_sessions(include_archived=True):
            thread_id = self.thread_of(session)
            if thread_id is not None:
                found.append(thread_id)
                self._sessions.setdefault(thread_id, session.id)
        return found

    def thread_of(self, session: StoredSession) -> str | None:
        """The thread a session holds, or None if it is not a thread's.

        A thread session carries :func:`thread_labels`. Sessions created before the saver
        labelled them have no labels at all, only the metadata ``langgraph.thread_id``: for
        them (and only them, so that a labelled store is listed from its index alone) the
        metadata is read.
        """
        if session.labels:
            if FRAMEWORK_LABEL.items() <= session.labels.items():
                return session.labels.get(THREAD_KEY)
            return None  # another framework's, or the application's own
        try:
            thread_id = self.store.get_metadata(session.id, THREAD_KEY)
        except SessionNotFound:
            return None
        return thread_id if isinstance(thread_id, str) else None

    def events(self, thread_id: str) -> list[StoredEvent]:
        """Every event of the thread's session, oldest first (none if it has nothing stored)."""
        session_id = self.session_id(thread_id)
        if session_id is None:
            return []
        try:
            return self.store.load_events(session_id)
        except SessionNotFound:
            return []

    def _holds(self, session_id: str, thread_id: str) -> bool:
        session = self.store.get_session(session_id)
        return session is not None and self.thread_of(session) == thread_id

    def _lock(self, session_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(session_id, threading.Lock())

    def _forget(self, thread_id: str) -> None:
        session_id = self._sessions.pop(thread_id, None)
        if session_id is not None:
            self._heads.pop(session_id, None)

    def append(self, thread_id: str, events: Sequence[tuple[str, str]]) -> None:
        """Append ``(event_type, data)`` pairs after the thread's head as one batch, creating its session if new.

        :raises SessionConflict: if other processes kept moving the head through every attempt; nothing written.
        """
        ids = [new_id() for _ in events]
        for _ in range(_APPEND_ATTEMPTS):
            session_id = self.session_id(thread_id)
            if session_id is None:
                if self._create(thread_id, events, ids):
                    return
                continue
            with self._lock(session_id):
                if session_id in self._heads:
                    head = self._heads[session_id]
                else:
                    stored = self.store.get_session(session_id)
                    if stored is None or self.thread_of(stored) != thread_id:
                        self._forget(thread_id)  # deleted by another process since, its id maybe reused
                        continue
                    head = stored.head_id
                try:
                    self.store.append_events(session_id, self._chain(session_id, events, ids, head))
                except (SessionConflict, SessionNotFound):
                    # The head moved, or the session went. Another process may have deleted the thread
                    # and the application created a session of its own under the id: look the thread
                    # up again (its labels) rather than append after whatever head the id has now.
                    self._forget(thread_id)
                    continue
                self._heads[session_id] = ids[-1]
                return
        raise SessionConflict(
            f"thread {thread_id!r}: other writers kept moving its session's head; nothing was written, retry"
        )

    def _create(self, thread_id: str, events: Sequence[tuple[str, str]], ids: list[str]) -> bool:
        """Create the thread's session holding ``events`` (one write); False if another writer created it first."""
        for session_id in candidate_session_ids(thread_id):
            batch = SessionBatch(
                create=(None, None),
                events=self._chain(session_id, events, ids, None),
                metadata={THREAD_KEY: thread_id},
                labels=thread_labels(thread_id),
            )
            try:
                self.store.write_batch(session_id, batch)
            except SessionExists:
                if self._holds(session_id, thread_id):
                    return False  # a concurrent first put of the same thread: append after it
                continue  # the id is another session's (or differs from one only in case)
            self._sessions[thread_id] = session_id
            self._heads[session_id] = ids[-1]
            return True
        raise SessionExists(f"thread {thread_id!r}: its session ids are taken by other sessions in {self.store.root}")

    def stored(self, session_id: str, events: Sequence[tuple[str, str]]) -> list[StoredEvent]:
        """``(event_type, data)`` pairs as new events of a session (fresh ids, this saver's invocation), chained."""
        return self._chain(session_id, events, [new_id() for _ in events], None)

    def _chain(
        self, session_id: str, events: Sequence[tuple[str, str]], ids: list[str], head: str | None
    ) -> list[StoredEvent]:
        chained = []
        parent = head
        now = utcnow()
        for event_id, (event_type, data) in zip(ids, events, strict=True):
            chained.append(
                StoredEvent(
                    id=event_id,
                    session_id=session_id,
                    parent_id=parent,
                    invocation_id=self._invocation_id,
                    event_type=event_type,
                    event_data=data,
                    created_at=now,
                )
            )
            parent = event_id
        return chained

    def _recheck(self, thread_id: str) -> str | None:
        """:meth:`session_id` looked up again: the session remembered may have been deleted and its id reused."""
        self._forget(thread_id)
        return self.session_id(thread_id)

    def delete(self, thread_id: str) -> None:
        """Move the thread's session log to the store's trash (``trash/deleted/``); nothing stored: no-op."""
        session_id = self._recheck(thread_id)
        if session_id is None:
            return
        with self._lock(session_id):
            with contextlib.suppress(SessionNotFound):  # deleted by another process: the same outcome
                self.store.delete_session(session_id)
            self._forget(thread_id)

    def rewrite(self, thread_id: str, select: Select) -> None:
        """Replace the thread's events by those ``select`` keeps (None: no change), in one step.

        The kept events keep their ids and times, each now the child of the kept event
        before it. The events are read and replaced under the session's lock, so no append
        falls between the two: another writer's append waits, then goes into the new log
        (or, if the head it knew was dropped, gets ``SessionConflict`` and :meth:`append`
        tries again after the new head). Readers see the old log or the new one, never an
        empty thread; the old log is kept whole in ``trash/replaced/``, and the session's
        metadata stays.
        """
        session_id = self._recheck(thread_id)
        if session_id is None:
            return
        # A first look without the lock: delete_for_runs goes through every thread, and most have
        # nothing to drop; their writers should not wait while the log is read.
        try:
            if select(self.store.load_events(session_id)) is None:
                return
        except SessionNotFound:
            self._forget(thread_id)
            return
        with self._lock(session_id), self.store.session_lock(session_id):
            try:
                kept = select(self.store.load_events(session_id))
                if kept is None:
                    return
                relinked = [
                    msgspec.structs.replace(event, session_id=session_id, parent_id=kept[n - 1].id if n else None)
                    for n, event in enumerate(kept)
                ]
                replaced = self.store.replace_events(session_id, relinked)
            except SessionNotFound:  # deleted by another process since: nothing left to prune
                self._forget(thread_id)
                return
            self._heads[session_id] = replaced.head_id
