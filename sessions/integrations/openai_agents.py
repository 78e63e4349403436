"""An OpenAI Agents SDK session kept in a session log: :class:`JsonlSession`.

Needs the ``openai-agents`` extra (``pip install 'jsonl-sessions[openai-agents]'``); see
docs/integrations/openai_agents.md for what it writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Final, Self, TypeVar, cast

import msgspec
from agents.memory.session_settings import SessionSettings, coerce_session_settings, resolve_session_limit

from eventlog import new_id, utcnow
from sessions.aio import AsyncLocalSessionService
from sessions.errors import InvalidSessionId, SessionConflict, SessionExists, SessionNotFound
from sessions.events import EventBase, UnknownEvent
from sessions.models import SessionBatch, StoredEvent
from sessions.protocol import check_session_id
from sessions.store import LocalSessionService

if TYPE_CHECKING:
    from agents.items import TResponseInputItem

__all__ = ["EVENT_TYPES", "SESSION_KEY", "AgentItem", "JsonlSession", "mapped_session_id"]

_T = TypeVar("_T")

SESSION_KEY: Final = "openai_agents.session_id"
"""The label (and metadata key) holding the SDK's session id: it marks a log as an Agents SDK session."""

_NAMESPACE: Final = uuid.UUID("0b8e5a4c-3f2d-5e71-a9c4-6d2f1e8b7a53")
_ATTEMPTS: Final = 64
"""Appends retried after another process moved the head (each retry reads the head again, nothing else)."""


class AgentItem(EventBase, frozen=True, kw_only=True):
    """One conversation item of the SDK (``TResponseInputItem``), as given to ``add_items``."""

    TYPE: ClassVar[str] = "openai_agents_item"
    item: Any


EVENT_TYPES: Final = (AgentItem,)
"""The adapter's event types: give them to ``AsyncLocalSessionService.open(root, event_types=...)``."""

_encode: Final = msgspec.json.Encoder().encode
_decode_item: Final = msgspec.json.Decoder(AgentItem).decode


def mapped_session_id(session_id: str) -> str:
    """The log id of an SDK session whose id cannot be a session id (or is taken): uuid5 of it."""
    return str(uuid.uuid5(_NAMESPACE, session_id))


def _candidates(session_id: str) -> list[str]:
    mapped = mapped_session_id(session_id)
    try:
        direct = check_session_id(session_id)
    except InvalidSessionId:
        return [mapped]
    return [direct] if direct == mapped else [direct, mapped]


def _item_of(event: EventBase) -> Any:
    """The SDK item an event holds, or None (another type, or data that is not an item)."""
    if isinstance(event, AgentItem):
        return event.item
    if isinstance(event, UnknownEvent) and event.type == AgentItem.TYPE:  # a store opened without EVENT_TYPES
        try:
            return _decode_item(event.data).item
        except msgspec.DecodeError:
            return None
    return None


_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(root: str, session_id: str) -> threading.Lock:
    """One lock per SDK session and store in this process: its writers take turns instead of conflicting."""
    with _locks_guard:
        return _locks.setdefault((root, session_id), threading.Lock())


class JsonlSession:
    """The Agents SDK ``Session`` protocol over a session log: one event per item, appended.

    :param session_id: the SDK's session id; the log has the same id when it is a valid session id.
    :param store: the store's folder (opened here, with ``durability``), or an open
        :class:`AsyncLocalSessionService` to share (open it with ``event_types=EVENT_TYPES``).
    :param session_settings: the SDK's settings; ``limit`` is the default of :meth:`get_items`.

    ``pop_item`` rewinds past the last item and ``clear_session`` moves the log to the store's
    trash: nothing is ever erased. The file work runs in the store's worker threads.
    """

    session_settings: SessionSettings | None = None

    def __init__(
        self,
        session_id: str,
        store: str | os.PathLike[str] | AsyncLocalSessionService,
        *,
        session_settings: SessionSettings | dict[str, Any] | None = None,
        durability: str = "fsync",
    ) -> None:
        if not isinstance(session_id, str):
            raise TypeError(f"session_id must be a str, not {type(session_id).__name__}")
        self.session_id = session_id
        self.session_settings = (
            coerce_session_settings(session_settings) if session_settings is not None else SessionSettings()
        )
        self._owns_store = not isinstance(store, AsyncLocalSessionService)
        self.store = (
            store
            if isinstance(store, AsyncLocalSessionService)
            else AsyncLocalSessionService.open(store, durability=durability, event_types=EVENT_TYPES)
        )
        self._log_id: str | None = None
        """The id of the log holding this session, once found."""
        self._head: str | None = None
        self._head_known = False
        self._lock = _lock(str(self.store.root), session_id)
        self._invocation_id = new_id()

    @property
    def log_id(self) -> str | None:
        """The id of the session log holding this SDK session (None until something is stored)."""
        return self._log_id

    async def close(self) -> None:
        """Release the store, if this session opened it."""
        if self._owns_store:
            await self.store.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the protocol -------------------------------------------------------------------

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The items, oldest first; with a limit (or ``session_settings.limit``), the last ``limit``, read from
        the end of the log. A limit of 0 gives none, a negative one all (as ``SQLiteSession``)."""
        wanted = resolve_session_limit(limit, self.session_settings)
        if wanted == 0:
            return []
        # A read writes nothing, so it needs no let-finish-on-cancel shield: the plain executor hop is cheaper.
        call = functools.partial(self._locked, self._get_items, wanted if wanted is not None and wanted > 0 else None)
        return await asyncio.get_running_loop().run_in_executor(None, call)

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append the items as one write (and one fsync), after whatever is stored."""
        if not items:
            return
        data = [_encode(AgentItem(item=item)).decode() for item in items]
        await self._run(self._add_items, data)

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the last item (None if there is none): a rewind, so it stays in the log."""
        return await self._run(self._pop_item)

    async def clear_session(self) -> None:
        """Remove every item: the log goes to the store's trash (``trash/deleted/``); the next add starts anew."""
        await self._run(self._clear)

    # -- in a worker thread -------------------------------------------------------------

    async def _run(self, call: Callable[..., _T], *args: Any) -> _T:
        return await self.store.run(self._locked, call, *args)

    def _locked(self, call: Callable[..., _T], *args: Any) -> _T:
        with self._lock:
            return call(*args)

    @property
    def _sync(self) -> LocalSessionService:
        return self.store.sync

    def _find(self) -> str | None:
        """The id of the log holding this session: the cached one, or the first candidate labelled as this
        session (read from the index, with its head)."""
        if self._log_id is None:
            for candidate in _candidates(self.session_id):
                stored = self._sync.get_session(candidate)
                if stored is not None and stored.labels.get(SESSION_KEY) == self.session_id:
                    self._log_id = candidate
                    self._head, self._head_known = stored.head_id, True
                    break
        return self._log_id

    def _find_again(self) -> str | None:
        """:meth:`_find` without the cached id: another process may have cleared the session, and another
        session (the application's, or this one at its other id) may hold the cached id now."""
        self._forget()
        return self._find()

    def _forget(self) -> None:
        self._log_id, self._head, self._head_known = None, None, False

    def _get_items(self, limit: int | None) -> list[Any]:
        for _ in range(2):
            cached = self._log_id is not None
            log_id = self._find()
            if log_id is None:
                return []
            try:
                found, head = self._read_items(log_id, limit)
            except SessionNotFound:  # cleared by another process: it may have started anew at its other id
                self._forget()
                continue
            if found or not cached:
                self._head, self._head_known = head, True
                return found
            # No items in the cached log: it may be another session now (one of an id cleared, then reused).
            self._forget()
        return []

    def _read_items(self, log_id: str, limit: int | None) -> tuple[list[Any], str | None]:
        """The log's items (the last ``limit``) and its head: windows from the end, growing fourfold while
        events of other types keep the items in one short of ``limit``."""
        window = limit
        while True:
            conversation = self._sync.load_conversation(log_id, last=window)
            found = [item for item in map(_item_of, conversation.events) if item is not None]
            if window is None or limit is None or len(found) >= limit or len(conversation.events) < window:
                return (found if limit is None else found[-limit:]), conversation.head_id
            window *= 4

    def _add_items(self, data: list[str]) -> None:
        ids = [new_id() for _ in data]
        for _ in range(_ATTEMPTS):
            log_id = self._find()
            if log_id is None:
                if self._create(data, ids):
                    return
                continue
            if not self._head_known:
                self._find_again()
                continue
            try:
                self._sync.append_events(log_id, self._chain(log_id, data, ids, self._head))
            except (SessionConflict, SessionNotFound):
                # Another process appended (read its head, go after it) or cleared the session; then another
                # session may hold the id: find the log again by its label, never append to the id blindly.
                self._forget()
                continue
            self._head = ids[-1]
            return
        raise SessionConflict(f"session {self.session_id!r}: other writers kept moving its head; nothing was written")

    def _create(self, data: list[str], ids: list[str]) -> bool:
        """Create the log holding the first items (one write); False if another writer created it first."""
        for candidate in _candidates(self.session_id):
            batch = SessionBatch(
                create=(None, None),
                events=self._chain(candidate, data, ids, None),
                metadata={SESSION_KEY: self.session_id},
                labels={SESSION_KEY: self.session_id},
            )
            try:
                self._sync.write_batch(candidate, batch)
            except SessionExists:
                stored = self._sync.get_session(candidate)
                if stored is not None and stored.labels.get(SESSION_KEY) == self.session_id:
                    return False  # another process's first add: append after it
                continue  # the id is another session's (or differs from one only in case)
            self._log_id, self._head, self._head_known = candidate, ids[-1], True
            return True
        raise SessionExists(f"session {self.session_id!r}: its log ids are taken by other sessions")

    def _chain(self, log_id: str, data: list[str], ids: list[str], head: str | None) -> list[StoredEvent]:
        now = utcnow()
        chained = []
        for event_id, payload in zip(ids, data, strict=True):
            chained.append(
                StoredEvent(
                    id=event_id,
                    session_id=log_id,
                    parent_id=head,
                    invocation_id=self._invocation_id,
                    event_type=AgentItem.TYPE,
                    event_data=payload,
                    created_at=now,
                )
            )
            head = event_id
        return chained

    def _pop_item(self) -> Any:
        log_id = self._find_again()  # a rewind of the cached id could rewind another session that took it
        if log_id is None:
            return None
        try:
            while True:
                tail = self._sync.load_events(log_id, last=1)
                if not tail:
                    self._head, self._head_known = None, True
                    return None
                last = tail[0]
                try:
                    # Only if the item is still the last: another process's add in between is not popped.
                    self._sync.rewind(log_id, last.parent_id, expected_head=last.id)
                except SessionConflict:
                    continue  # it added since: pop what is last now
                self._head, self._head_known = last.parent_id, True
                item = _item_of(self._sync.deserialize_event(last.event_type, last.event_data))
                if item is not None:
                    return cast(Any, item)
        except SessionNotFound:
            self._forget()
            return None

    def _clear(self) -> None:
        log_id = self._find_again()  # the cached id may be another session's now: never delete that one
        if log_id is not None:
            with contextlib.suppress(SessionNotFound):  # cleared by another process: the same outcome
                self._sync.delete_session(log_id)
        self._forget()
