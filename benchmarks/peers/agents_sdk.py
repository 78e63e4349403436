"""The OpenAI Agents SDK's ``SQLiteSession`` (PyPI ``openai-agents``, import ``agents``): an optional peer.

Only its read of the last items is measured (``windows`` section of ``run.py``):
``await session.get_items(limit=N)`` on a session of plain message items
(``{"role": "user" | "assistant", "content": ...}``) in a file database. The
SDK runs each query in a worker thread (``asyncio.to_thread``); the call is
timed inside a coroutine on one event loop kept for the whole run, so neither
the loop's start nor ``run_until_complete`` is charged to it.

``SameQuery`` runs the SDK's own SQL on the same database file with a plain
``sqlite3`` connection in the calling thread, and decodes the rows as it does
(``json.loads``): what the SDK's read costs without its hop to a worker thread.

The SDK is imported only when this peer is used (its import takes seconds).
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import time
from pathlib import Path
from typing import Any, Final

from benchmarks.workloads import _prose
from sessions import ConversationEvent, StoredEvent, Text, UserMessage, deserialize_event

__all__ = ["MISSING", "NAME", "SAME_QUERY", "AgentsSession", "SameQuery", "as_items", "chat_items", "to_events"]

NAME: Final = "openai-agents"
SAME_QUERY: Final = "sqlite-same-query"
MISSING: Final = "not installed: pip install -e '.[bench]' (openai-agents)"


def chat_items(count: int, seed: int = 20) -> list[dict[str, str]]:
    """``count`` message items, user and assistant in turn (60-300 and 200-600 characters)."""
    rng = random.Random(seed)
    return [
        {"role": "user", "content": _prose(rng, rng.randrange(60, 300))}
        if i % 2 == 0
        else {"role": "assistant", "content": _prose(rng, rng.randrange(200, 600))}
        for i in range(count)
    ]


def to_events(items: list[dict[str, str]]) -> list[ConversationEvent]:
    """The items as this library's events: a user item is a ``UserMessage``, an assistant item a ``Text``."""
    return [UserMessage(item["content"]) if item["role"] == "user" else Text(item["content"]) for item in items]


def as_items(events: list[StoredEvent]) -> list[dict[str, str]]:
    """Stored events typed (``deserialize_event``) and turned back into the SDK's items: an adapter's work."""
    out: list[dict[str, str]] = []
    for stored in events:
        event = deserialize_event(stored.event_type, stored.event_data)
        if isinstance(event, UserMessage):
            out.append({"role": "user", "content": event.content})
        elif isinstance(event, Text):
            out.append({"role": "assistant", "content": event.content})
    return out


def available() -> bool:
    """Whether the SDK can be imported."""
    try:
        from agents.memory import SQLiteSession  # noqa: F401
    except ImportError:
        return False
    return True


class AgentsSession:
    """One ``SQLiteSession`` in a database file, driven from one event loop kept open."""

    def __init__(self, db: Path, session_id: str) -> None:
        from agents.memory import SQLiteSession

        self.loop = asyncio.new_event_loop()
        self.session: Any = SQLiteSession(session_id, db)

    def add(self, items: list[dict[str, str]], chunk: int = 1000) -> None:
        for start in range(0, len(items), chunk):
            self.loop.run_until_complete(self.session.add_items(items[start : start + chunk]))

    async def _timed_get(self, limit: int) -> tuple[float, list[Any]]:
        start = time.perf_counter()
        items = await self.session.get_items(limit=limit)
        return time.perf_counter() - start, list(items)

    def get(self, limit: int) -> tuple[float, list[Any]]:
        """Seconds ``await get_items(limit=limit)`` took (timed inside the coroutine), and its items."""
        return self.loop.run_until_complete(self._timed_get(limit))

    def close(self) -> None:
        self.session.close()
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()


class SameQuery:
    """The SDK's query on its database file, in the calling thread, rows decoded as the SDK decodes them."""

    def __init__(self, db: Path, session_id: str) -> None:
        self.connection = sqlite3.connect(db)
        self.session_id = session_id

    def get(self, limit: int) -> list[Any]:
        rows = self.connection.execute(
            "SELECT message_data FROM agent_messages WHERE session_id = ? ORDER BY id DESC LIMIT ?",
            (self.session_id, limit),
        ).fetchall()
        return [json.loads(data) for (data,) in reversed(rows)]

    def close(self) -> None:
        self.connection.close()
