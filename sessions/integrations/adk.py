"""A Google ADK session service that keeps each session in a session log: :class:`JsonlSessionService`.

Needs the ``adk`` extra (``pip install 'jsonl-sessions[adk]'``); see docs/integrations/adk.md for
what it writes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import weakref
from typing import Any, Final, Self

from google.adk.errors import StaleSessionError
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.sessions import BaseSessionService, Session
from google.adk.sessions._session_util import make_json_safe_state
from google.adk.sessions.base_session_service import GetSessionConfig, ListSessionsResponse
from typing_extensions import override

from eventlog import new_id
from sessions.aio import AsyncLocalSessionService
from sessions.errors import SessionNotFound
from sessions.integrations._adk_logs import USER, AdkEvent, AdkLogs, Read, Stale, user_log_id

__all__ = ["EVENT_TYPES", "JsonlSessionService"]

EVENT_TYPES: Final = (AdkEvent,)
"""The service's event types: give them to ``AsyncLocalSessionService.open(root, event_types=...)`` for a store
you share."""

_STALE: Final = (
    "The session has been modified in storage since it was loaded. Please reload the session before appending "
    "more events."
)


def _session(app: str, user: str, session_id: str, read: Read, after: float | None = None) -> Session:
    events = [Event.model_validate_json(data) for data in read.events]
    if after is not None:  # the log keeps microseconds: cut at what a finer timestamp puts before ``after``
        before = [n for n, event in enumerate(events) if event.timestamp < after]
        events = events[before[-1] + 1 :] if before else events
    session = Session(
        id=session_id,
        app_name=app,
        user_id=user,
        state=read.state,
        events=events,
        last_update_time=read.stored.updated_at.timestamp(),
    )
    session._storage_update_marker = read.stored.head_id or ""  # the revision append_event checks
    return session


class JsonlSessionService(BaseSessionService):
    """ADK's session service over a session store: one log per session, read from its end.

    :param root: the store's folder (created if missing), or an open :class:`AsyncLocalSessionService` to
        share (open it with ``event_types=EVENT_TYPES``).
    :param durability: for a store opened here: ``"fsync"`` (survives power loss) or ``"flush"``.

    Session state is written in the same write as the event that changes it; ``app:`` and ``user:`` state
    live in one log per app and per user, written right after the event; ``temp:`` state is never stored.
    The file work runs in the store's worker threads, so the event loop never waits on a disk.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | AsyncLocalSessionService,
        *,
        durability: str = "fsync",
        lock_timeout: float = 2.0,
    ) -> None:
        self._owns_store = not isinstance(root, AsyncLocalSessionService)
        self.store = (
            root
            if isinstance(root, AsyncLocalSessionService)
            else AsyncLocalSessionService.open(
                root, durability=durability, lock_timeout=lock_timeout, event_types=EVENT_TYPES
            )
        )
        self.logs = AdkLogs(self.store.sync)
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str, str], asyncio.Lock]]
        self._turns = weakref.WeakKeyDictionary()
        """Per event loop, per session: appends take turns, so tasks sharing a Session object do not go stale."""

    async def close(self) -> None:
        """Release the store, if this service opened it."""
        if self._owns_store:
            await self.store.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def log_id(self, app_name: str, user_id: str, session_id: str) -> str | None:
        """The id of the session log holding an ADK session (None if there is none); reads the index."""
        stored = self.logs.find(app_name, user_id, session_id)
        return stored.id if stored is not None else None

    @override
    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        """Create a session (its log, with its state, in one write); ``app:``/``user:`` state go to their logs.

        :raises AlreadyExistsError: if the app's user has a session of that id.
        """
        sid = session_id or new_id()
        safe = make_json_safe_state(state or {})
        read = await self.store.run(self.logs.create, app_name, user_id, sid, safe)
        if read is None:
            raise AlreadyExistsError(f"Session with id {sid} already exists.")
        return _session(app_name, user_id, sid, read)

    @override
    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        """The session with its merged state and its events (``config`` picks the last ones, read from the end)."""
        recent = config.num_recent_events if config is not None else None
        after = config.after_timestamp if config is not None else None

        def read() -> Session | None:
            found = self.logs.read(app_name, user_id, session_id, recent, after)
            return None if found is None else _session(app_name, user_id, session_id, found, after)

        return await self.store.run(read)

    @override
    async def list_sessions(self, *, app_name: str, user_id: str | None = None) -> ListSessionsResponse:
        """The app's sessions (of one user, or every user's), oldest update first, without their events.

        Found by their labels in the store's index: logs of other apps and users are not read.
        """

        def listed() -> ListSessionsResponse:
            sessions = [
                Session(
                    id=stored.labels["adk.session"],
                    app_name=app_name,
                    user_id=stored.labels[USER],
                    state=state,
                    events=[],
                    last_update_time=stored.updated_at.timestamp(),
                )
                for stored, state in self.logs.sessions(app_name, user_id)
            ]
            sessions.sort(key=lambda s: (s.last_update_time, s.user_id, s.id))
            return ListSessionsResponse(sessions=sessions)

        return await self.store.run(listed)

    @override
    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        """Move the session's log to the store's trash (``trash/deleted/``, where ``restore_session`` finds it)."""
        await self.store.run(self.logs.delete, app_name, user_id, session_id)

    @override
    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        """The user's state in the app (keys without ``user:``)."""
        return await self.store.run(self.logs.state_of, user_log_id(app_name, user_id))

    @override
    async def append_event(self, session: Session, event: Event) -> Event:
        """Store the event with its session state delta (one write), then its ``app:`` and ``user:`` deltas.

        :raises StaleSessionError: if the stored session changed since ``session`` was read or last appended to.
        :raises SessionNotFoundError: if the session does not exist (any more).
        """
        if event.partial:
            return event
        self._apply_temp_state(session, event)
        event = self._trim_temp_delta_state(event)
        delta = make_json_safe_state(event.actions.state_delta) if event.actions.state_delta else {}
        async with self._turn(session):
            head, when = await self._append(session, event, delta)
            session.last_update_time = when.timestamp()
            session._storage_update_marker = head
        return self._commit_event_to_session(session, event)

    def _turn(self, session: Session) -> asyncio.Lock:
        turns = self._turns.setdefault(asyncio.get_running_loop(), {})
        return turns.setdefault((session.app_name, session.user_id, session.id), asyncio.Lock())

    async def _append(self, session: Session, event: Event, delta: dict[str, Any]) -> tuple[str, dt.datetime]:
        marker = session._storage_update_marker
        try:
            return await self.store.run(
                self.logs.append,
                session.app_name,
                session.user_id,
                session.id,
                marker,
                (session.last_update_time, session.events[-1].id if session.events else None),
                event.model_dump_json(exclude_none=True),
                (event.invocation_id, event.timestamp),
                delta,
            )
        except Stale:
            raise StaleSessionError(_STALE) from None
        except SessionNotFound:
            raise SessionNotFoundError(f"Session {session.id} not found.") from None
