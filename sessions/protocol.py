"""The port: what any session store offers, and the rule for session ids."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from types import EllipsisType
from typing import Final, Protocol, TypeVar, runtime_checkable

from sessions._mapping import Conversation
from sessions.errors import InvalidSessionId
from sessions.events import deserialize_event
from sessions.models import StoredEvent, StoredSession, TrashedSession, VerifyReport

__all__ = [
    "SESSION_ID",
    "SESSION_NAME",
    "SessionService",
    "check_session_id",
    "cut_window",
    "is_session_id",
    "load_conversation",
]

SESSION_ID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""A canonical lower-case, hyphenated UUID string: the ids the library generates (UUIDv7)."""

SESSION_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
"""Every id a session may have: 1-128 characters of ``[A-Za-z0-9._-]``, not starting with ``.`` or ``-``.

An application may choose its own ids within it (see :func:`check_session_id` for the few forms refused)."""

# Names Windows refuses for a file whatever its extension: a store synced there must still open.
_DEVICE_NAMES: Final = re.compile(r"(?i)(?:con|prn|aux|nul|com[0-9]|lpt[0-9])(?:\..*)?")
# Syncthing names its conflict copies "<name>.sync-conflict-<date>-<time>-<device>.jsonl":
# an id holding that text could not be told from a copy of another session.
_COPY_MARK: Final = ".sync-conflict-"
_ANY_UUID: Final = re.compile(r"(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def check_session_id(session_id: object) -> str:
    """Return ``session_id`` if it is a valid session id, else raise :class:`InvalidSessionId`.

    Valid: 1-128 characters of ``[A-Za-z0-9._-]``, not starting with ``.`` or ``-``, not ending with ``.``,
    not holding ``.sync-conflict-``, not a Windows device name (``con``, ``nul``, ``com1``...), and a UUID
    only in lower case.
    Ids differing only in case are distinct here but refused by a store that holds one of them
    (``SessionExists``), so that the store works on case-insensitive file systems too.
    Ids become file names, so this runs before any path is built.

    :raises InvalidSessionId: (a ``SessionsError`` and a ``ValueError``) for anything else.
    """
    if isinstance(session_id, str) and SESSION_ID.fullmatch(session_id):
        return session_id  # the common case: a generated id
    if (
        not isinstance(session_id, str)
        or not SESSION_NAME.fullmatch(session_id)
        or session_id.endswith(".")
        or _COPY_MARK in session_id
        or _DEVICE_NAMES.fullmatch(session_id)
    ):
        raise InvalidSessionId(
            f"{session_id!r} is not a valid session id: use 1-128 characters of A-Z, a-z, 0-9, '.', '_' and '-', "
            "not starting with '.' or '-' (see sessions.protocol.check_session_id)"
        )
    if _ANY_UUID.fullmatch(session_id):
        # So no id can differ only in case from a UUID one: the store then checks such clashes
        # for an application's other ids alone, and never lists the folder for a generated id.
        raise InvalidSessionId(f"{session_id!r} is not a valid session id: write a UUID in lower case")
    return session_id


def is_session_id(name: str) -> bool:
    """Whether ``name`` is a valid session id (:func:`check_session_id` without the error)."""
    try:
        check_session_id(name)
    except InvalidSessionId:
        return False
    return True


@runtime_checkable
class SessionService(Protocol):
    """Where sessions live. :class:`LocalSessionService` keeps them in plain files."""

    def create_session(self, session_id: str, directory: str | None, git_root: str | None) -> StoredSession: ...
    def get_session(self, session_id: str) -> StoredSession | None: ...
    def find_resumable(
        self, directory: str | None, git_root: str | None, max_age_secs: float
    ) -> StoredSession | None: ...
    def list_sessions(self, *, include_archived: bool = False) -> list[StoredSession]: ...
    def load_events(
        self, session_id: str, *, last: int | None = None, from_compaction: bool = False
    ) -> list[StoredEvent]: ...
    def append_event(
        self,
        session_id: str,
        event_id: str,
        parent_id: str | None,
        invocation_id: str,
        event_type: str,
        event_data: str,
    ) -> None: ...
    def append_events(self, session_id: str, events: Sequence[StoredEvent]) -> None: ...
    def update_server_session_id(self, session_id: str, server_session_id: str) -> None: ...
    def archive(self, session_id: str) -> None: ...
    def unarchive(self, session_id: str) -> None: ...
    def get_metadata(self, session_id: str, key: str) -> str | None: ...
    def set_metadata(self, session_id: str, key: str, value: str) -> None: ...
    def verify(self, session_id: str) -> VerifyReport: ...
    def fork_session(self, session_id: str, at_event_id: str | None = None) -> StoredSession: ...
    def rewind(
        self, session_id: str, to_event_id: str | None, *, expected_head: str | EllipsisType | None = ...
    ) -> None: ...
    def delete_session(self, session_id: str) -> None: ...
    def restore_session(self, session_id: str) -> None: ...
    def list_trash(self) -> list[TrashedSession]: ...
    def purge_trash(self, older_than_secs: float) -> int: ...


def load_conversation(
    service: SessionService, session_id: str, *, last: int | None = None, from_compaction: bool = False
) -> Conversation:
    """The session's events typed (or a window of them), with the last one's id and time: what a resume needs.

    Uses the service's own ``load_conversation`` where it has one (the file
    store reads the log once); any other service's events are typed from ``load_events``.
    """
    windowed = last is not None or from_compaction
    own = getattr(service, "load_conversation", None)
    if own is not None:
        # Without a window, call as services written before windows existed expect.
        result: Conversation = (
            own(session_id, last=last, from_compaction=from_compaction) if windowed else own(session_id)
        )
        return result
    stored = (
        service.load_events(session_id, last=last, from_compaction=from_compaction)
        if windowed
        else service.load_events(session_id)
    )
    events = [deserialize_event(e.event_type, e.event_data) for e in stored]
    return Conversation(events, stored[-1].id if stored else None, stored[-1].created_at if stored else None)


_E = TypeVar("_E")


def cut_window(
    events: Sequence[_E], last: int | None, from_compaction: bool, event_type: Callable[[_E], str]
) -> list[_E]:
    """The window ``load_events(last=..., from_compaction=...)`` returns, cut from the whole active branch.

    From the newest ``compaction`` event (included) if ``from_compaction``; then the last ``last`` of those.
    """
    if from_compaction:
        starts = [n for n, event in enumerate(events) if event_type(event) == "compaction"]
        events = events[starts[-1] :] if starts else events
    if last is not None:
        return list(events[-last:]) if last > 0 else []
    return list(events)
