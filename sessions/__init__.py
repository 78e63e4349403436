"""Chat and agent sessions kept as append-only JSON-lines logs, without a database."""

from sessions.errors import (
    DamagedLogWarning,
    InvalidSessionId,
    SessionBusy,
    SessionConflict,
    SessionExists,
    SessionHistoryMismatch,
    SessionNotFound,
    SessionReadError,
    SessionsError,
    SessionWriteError,
    UnsafeStorePath,
)
from sessions.events import (
    Attachment,
    Compaction,
    ConversationEvent,
    EventBase,
    OutOfBandOutput,
    Reasoning,
    SkillInvocation,
    SystemContext,
    Text,
    ToolCall,
    ToolResult,
    UnknownEvent,
    UserMessage,
    deserialize_event,
    serialize_event,
)
from sessions.hold import SessionHold, hold_session
from sessions.manager import Resumed, SessionManager
from sessions.models import SessionBatch, StoredEvent, StoredSession, TrashedSession, VerifyReport
from sessions.protocol import SessionService
from sessions.store import LocalSessionService
from sessions.tree import SessionTree

__all__ = [
    "Attachment",
    "Compaction",
    "ConversationEvent",
    "DamagedLogWarning",
    "EventBase",
    "InvalidSessionId",
    "LocalSessionService",
    "OutOfBandOutput",
    "Reasoning",
    "Resumed",
    "SessionBatch",
    "SessionBusy",
    "SessionConflict",
    "SessionExists",
    "SessionHistoryMismatch",
    "SessionHold",
    "SessionManager",
    "SessionNotFound",
    "SessionReadError",
    "SessionService",
    "SessionTree",
    "SessionWriteError",
    "SessionsError",
    "SkillInvocation",
    "StoredEvent",
    "StoredSession",
    "SystemContext",
    "Text",
    "ToolCall",
    "ToolResult",
    "TrashedSession",
    "UnknownEvent",
    "UnsafeStorePath",
    "UserMessage",
    "VerifyReport",
    "deserialize_event",
    "hold_session",
    "serialize_event",
]
