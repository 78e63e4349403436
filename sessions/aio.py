"""The store and the manager for asyncio: every call a coroutine that never blocks the event loop.

File I/O, fsyncs and lock waits run in a worker thread. A call cancelled while
its worker runs is not abandoned half way: the worker is let finish (a write
cannot be stopped between its bytes and its sync), and only then is
``CancelledError`` raised. So a cancelled call either completed or wrote
nothing, and :class:`AsyncSessionManager`, whose state the worker updates,
knows which: its ``head_id`` and ``persisted_count`` say what is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import functools
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import EllipsisType
from typing import Any, Self, TypeVar

import msgspec

from sessions.events import EventBase, EventTypes
from sessions.manager import SessionManager
from sessions.models import SessionBatch, StoredEvent, StoredSession, TrashedSession, VerifyReport
from sessions.store import Conversation, LocalSessionService
from sessions.tree import SessionTree

__all__ = ["AsyncLocalSessionService", "AsyncResumed", "AsyncSessionManager"]

_T = TypeVar("_T")

WORKERS = 4
"""Worker threads per store. An fsync or a lock wait holds no GIL, so a few threads overlap them; but
every runnable worker competes with the event loop for the GIL, so more of them make the loop late
(16 tasks appending on 2 cores: loop-lag p99 ~1.5 ms with 4 workers, ~7 ms with 16; docs/BENCHMARKS.md).
Raise it (``workers=``) where many tasks wait on sessions other processes hold."""


async def _run(executor: ThreadPoolExecutor, call: Callable[[], _T]) -> _T:
    """Run ``call`` in a worker; if cancelled meanwhile, let a started call finish, then raise CancelledError."""
    work = executor.submit(call)
    try:
        return await asyncio.wrap_future(work)
    except asyncio.CancelledError:
        if work.cancel():
            raise  # it had not started: nothing was done
        # It runs on (a write cannot be stopped between its bytes and its sync): wait for it, so the
        # call completed or wrote nothing and the caller's state (a manager's head) is settled.
        while not work.done():
            with contextlib.suppress(asyncio.CancelledError, Exception):  # its error, if any, wrote nothing
                await asyncio.shield(asyncio.wrap_future(work))
        raise


class AsyncLocalSessionService:
    """:class:`~sessions.LocalSessionService` for asyncio: the same methods, as coroutines.

    Safe to share between tasks (and, like the sync store, between threads and processes).
    """

    def __init__(self, service: LocalSessionService, *, workers: int = WORKERS) -> None:
        self.sync = service
        """The synchronous store underneath (for code that is not async)."""
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sessions-io")

    @classmethod
    def open(
        cls,
        root: str | os.PathLike[str],
        *,
        lock_timeout: float = 2.0,
        durability: str = "fsync",
        event_types: Iterable[type[EventBase]] = (),
        workers: int = WORKERS,
    ) -> Self:
        """Open (creating if missing) the store at ``root``; see :meth:`LocalSessionService.open`.

        Not a coroutine: it makes at most three folders, once.

        :param workers: worker threads for the store's calls (see :data:`WORKERS`).
        """
        service = LocalSessionService.open(
            root, lock_timeout=lock_timeout, durability=durability, event_types=event_types
        )
        return cls(service, workers=workers)

    @property
    def root(self) -> Path:
        return self.sync.root

    @property
    def event_types(self) -> EventTypes:
        return self.sync.event_types

    async def run(self, call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run a synchronous call in a worker thread, with this module's cancellation rule."""
        return await _run(self._executor, functools.partial(call, *args, **kwargs))

    async def close(self) -> None:
        """Save the index and release descriptors and worker threads."""
        await self.run(self.sync.close)
        self._executor.shutdown(wait=False)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def deserialize_event(self, event_type: str, event_data: str | bytes | msgspec.Raw) -> EventBase:
        """Type one stored event (no I/O, so not a coroutine)."""
        return self.sync.deserialize_event(event_type, event_data)

    # -- sessions ---------------------------------------------------------------------

    async def create_session(
        self,
        session_id: str,
        directory: str | None,
        git_root: str | None,
        *,
        labels: Mapping[str, str] | None = None,
        events: Sequence[StoredEvent] = (),
        metadata: Mapping[str, Any] | None = None,
        created_at: dt.datetime | None = None,
        head_id: str | None = None,
    ) -> StoredSession:
        return await self.run(
            self.sync.create_session,
            session_id,
            directory,
            git_root,
            labels=labels,
            events=events,
            metadata=metadata,
            created_at=created_at,
            head_id=head_id,
        )

    async def get_session(self, session_id: str) -> StoredSession | None:
        return await self.run(self.sync.get_session, session_id)

    async def find_resumable(
        self, directory: str | None, git_root: str | None, max_age_secs: float
    ) -> StoredSession | None:
        return await self.run(self.sync.find_resumable, directory, git_root, max_age_secs)

    async def list_sessions(
        self, *, include_archived: bool = False, labels: Mapping[str, str] | None = None
    ) -> list[StoredSession]:
        return await self.run(self.sync.list_sessions, include_archived=include_archived, labels=labels)

    # -- events -----------------------------------------------------------------------

    async def load_events(
        self, session_id: str, *, last: int | None = None, from_compaction: bool = False
    ) -> list[StoredEvent]:
        return await self.run(self.sync.load_events, session_id, last=last, from_compaction=from_compaction)

    async def load_conversation(
        self, session_id: str, *, last: int | None = None, from_compaction: bool = False
    ) -> Conversation:
        return await self.run(self.sync.load_conversation, session_id, last=last, from_compaction=from_compaction)

    async def load_tree(self, session_id: str) -> SessionTree:
        return await self.run(self.sync.load_tree, session_id)

    async def append_event(
        self,
        session_id: str,
        event_id: str,
        parent_id: str | None,
        invocation_id: str,
        event_type: str,
        event_data: str,
    ) -> None:
        await self.run(self.sync.append_event, session_id, event_id, parent_id, invocation_id, event_type, event_data)

    async def append_events(self, session_id: str, events: Sequence[StoredEvent]) -> None:
        await self.run(self.sync.append_events, session_id, events)

    async def write_batch(self, session_id: str, batch: SessionBatch) -> None:
        await self.run(self.sync.write_batch, session_id, batch)

    # -- session facts ----------------------------------------------------------------

    async def update_server_session_id(self, session_id: str, server_session_id: str) -> None:
        await self.run(self.sync.update_server_session_id, session_id, server_session_id)

    async def archive(self, session_id: str) -> None:
        await self.run(self.sync.archive, session_id)

    async def unarchive(self, session_id: str) -> None:
        await self.run(self.sync.unarchive, session_id)

    async def get_metadata(self, session_id: str, key: str) -> Any:
        return await self.run(self.sync.get_metadata, session_id, key)

    async def set_metadata(self, session_id: str, key: str, value: Any) -> None:
        await self.run(self.sync.set_metadata, session_id, key, value)

    async def metadata(self, session_id: str) -> dict[str, Any]:
        return await self.run(self.sync.metadata, session_id)

    # -- maintenance, branches and the trash -------------------------------------------

    async def verify(self, session_id: str) -> VerifyReport:
        return await self.run(self.sync.verify, session_id)

    async def fork_session(self, session_id: str, at_event_id: str | None = None) -> StoredSession:
        return await self.run(self.sync.fork_session, session_id, at_event_id)

    async def rewind(
        self, session_id: str, to_event_id: str | None, *, expected_head: str | EllipsisType | None = ...
    ) -> None:
        await self.run(self.sync.rewind, session_id, to_event_id, expected_head=expected_head)

    async def replace_events(
        self, session_id: str, events: Sequence[StoredEvent], *, head_id: str | None = None
    ) -> StoredSession:
        return await self.run(self.sync.replace_events, session_id, events, head_id=head_id)

    async def repair_torn_tail(self, session_id: str) -> int:
        return await self.run(self.sync.repair_torn_tail, session_id)

    async def session_ids(self) -> list[str]:
        return await self.run(self.sync.session_ids)

    async def delete_session(self, session_id: str) -> None:
        await self.run(self.sync.delete_session, session_id)

    async def restore_session(self, session_id: str) -> None:
        await self.run(self.sync.restore_session, session_id)

    async def list_trash(self) -> list[TrashedSession]:
        return await self.run(self.sync.list_trash)

    async def purge_trash(self, older_than_secs: float) -> int:
        return await self.run(self.sync.purge_trash, older_than_secs)


class AsyncResumed(msgspec.Struct, frozen=True):
    """What :meth:`AsyncSessionManager.resume` returns (as :class:`~sessions.Resumed`)."""

    manager: AsyncSessionManager
    events: list[EventBase]
    server_session_id: str | None
    last_event_at: dt.datetime | None
    invocation_id: str


class AsyncSessionManager:
    """:class:`~sessions.SessionManager` for asyncio: the same rules, each write a coroutine.

    Calls on one manager run one at a time, in the order made. After a cancelled
    call, ``head_id`` and ``persisted_count`` say whether it completed.
    """

    def __init__(self, service: AsyncLocalSessionService, manager: SessionManager) -> None:
        self.service = service
        self.sync = manager
        """The synchronous manager underneath; use it only from a worker thread."""
        self._turn = asyncio.Lock()
        """Held by a call, or by a whole :meth:`batch` block."""
        self._inner = asyncio.Lock()
        """Held by each call into the sync manager: inside a block, tasks it spawned take turns on it."""
        self._in_batch: contextvars.ContextVar[bool] = contextvars.ContextVar(f"in_batch_{id(self)}", default=False)
        """True in the context of a :meth:`batch` block, and so in the tasks it starts (``gather``,
        ``wait_for``...), which copy that context: their calls go in without waiting for the turn it holds."""

    @classmethod
    def create_new(
        cls,
        service: AsyncLocalSessionService,
        directory: str | None = None,
        git_root: str | None = None,
        *,
        session_id: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Self:
        """A manager for a new session; nothing is written until there is something to keep (no I/O here)."""
        manager = SessionManager.create_new(service.sync, directory, git_root, session_id=session_id, labels=labels)
        return cls(service, manager)

    @classmethod
    async def resume(
        cls,
        service: AsyncLocalSessionService,
        stored: StoredSession,
        *,
        last: int | None = None,
        from_compaction: bool = False,
    ) -> AsyncResumed:
        """Load a stored session and return a manager that continues it; see :meth:`SessionManager.resume`."""
        resumed = await service.run(
            SessionManager.resume, service.sync, stored, last=last, from_compaction=from_compaction
        )
        manager = cls(service, resumed.manager)
        return AsyncResumed(
            manager, resumed.events, resumed.server_session_id, resumed.last_event_at, resumed.invocation_id
        )

    @classmethod
    def attach(cls, service: AsyncLocalSessionService, stored: StoredSession) -> Self:
        """A manager that appends without reading the conversation; see :meth:`SessionManager.attach`."""
        return cls(service, SessionManager.attach(service.sync, stored))

    @property
    def session_id(self) -> str:
        return self.sync.session_id

    @property
    def invocation_id(self) -> str:
        return self.sync.invocation_id

    @property
    def head_id(self) -> str | None:
        return self.sync.head_id

    @property
    def persisted_count(self) -> int:
        return self.sync.persisted_count

    async def _call(self, call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        if self._in_batch.get():
            async with self._inner:
                return await self.service.run(call, *args, **kwargs)
        async with self._turn, self._inner:
            return await self.service.run(call, *args, **kwargs)

    async def persist_events(self, events: Sequence[EventBase], *, times: Sequence[dt.datetime] | None = None) -> None:
        """See :meth:`SessionManager.persist_events`."""
        await self._call(self.sync.persist_events, list(events), times=times)

    async def append(self, events: Sequence[EventBase], *, times: Sequence[dt.datetime] | None = None) -> list[str]:
        """See :meth:`SessionManager.append`."""
        return await self._call(self.sync.append, list(events), times=times)

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """Gather the writes made in the block into one write and one sync when it ends; see
        :meth:`SessionManager.batch`. Other tasks' calls on this manager wait for the block to end."""
        if self._in_batch.get():
            yield  # nested: the outer block writes
            return
        async with self._turn:
            block = self.sync.batch()
            block.__enter__()  # no I/O: it only starts gathering
            token = self._in_batch.set(True)
            try:
                yield
            except BaseException as exc:
                block.__exit__(type(exc), exc, exc.__traceback__)  # drops what was gathered: no I/O
                raise
            finally:
                self._in_batch.reset(token)
            try:
                async with self._inner:
                    await self.service.run(block.__exit__, None, None, None)
            finally:
                # Cancelled before the worker took the write, the block was never closed: close it (writing
                # nothing), so the manager leaves batch mode. Closing a block that ended does nothing.
                block.gen.close()

    async def rewind(
        self, to_event_id: str | None, *, expected_head: str | EllipsisType | None = ...
    ) -> list[EventBase]:
        return await self._call(self.sync.rewind, to_event_id, expected_head=expected_head)

    async def pop(self) -> list[EventBase]:
        return await self._call(self.sync.pop)

    async def persist_server_session_id(self, server_session_id: str) -> None:
        await self._call(self.sync.persist_server_session_id, server_session_id)

    async def archive(self) -> None:
        await self._call(self.sync.archive)

    async def get_metadata(self, key: str) -> Any:
        return await self._call(self.sync.get_metadata, key)

    def deserialize_event(self, event_type: str, event_data: str | bytes | msgspec.Raw) -> EventBase:
        """Type one stored event as the store does (no I/O, so not a coroutine)."""
        return self.sync.deserialize_event(event_type, event_data)

    async def set_metadata(self, key: str, value: Any) -> None:
        await self._call(self.sync.set_metadata, key, value)
