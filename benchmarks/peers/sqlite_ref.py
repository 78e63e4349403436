"""The reference design on SQLite, as ``SEED_NOTES.md`` describes it, behind the same protocol.

Schema, indexes and queries follow the notes: three tables, WAL, whole-second
timestamps, ``append_event`` as one transaction (insert, then move the head).
``per_event=True`` makes :meth:`append_events` do what the reference's manager
does (one transaction per event); ``False`` batches a turn in one transaction.
Durability ``fsync`` runs ``synchronous=FULL``, ``flush`` runs ``synchronous=NORMAL``.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import EllipsisType
from typing import Any, Final

from benchmarks.peers.base import Persist, SessionSpec, manager_persister, manager_resumer, write_history
from sessions import ConversationEvent, SessionManager, StoredEvent, StoredSession, TrashedSession, VerifyReport
from sessions.protocol import cut_window

__all__ = ["SQLitePeer", "SQLiteSessionService"]

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, head_id TEXT, server_session_id TEXT, directory TEXT, git_root TEXT,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, archived_at INTEGER);
CREATE INDEX IF NOT EXISTS idx_sessions_directory ON sessions(directory);
CREATE INDEX IF NOT EXISTS idx_sessions_git_root ON sessions(git_root);
CREATE INDEX IF NOT EXISTS idx_sessions_updated_at ON sessions(updated_at);
CREATE INDEX IF NOT EXISTS idx_sessions_created_at ON sessions(created_at);
CREATE TABLE IF NOT EXISTS session_events (
    id TEXT PRIMARY KEY, session_id TEXT NOT NULL REFERENCES sessions(id), parent_id TEXT,
    invocation_id TEXT NOT NULL, event_type TEXT NOT NULL, event_data TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS idx_events_session ON session_events(session_id, created_at);
CREATE TABLE IF NOT EXISTS session_metadata (
    session_id TEXT NOT NULL REFERENCES sessions(id), key TEXT NOT NULL, value TEXT NOT NULL,
    updated_at INTEGER NOT NULL, PRIMARY KEY (session_id, key));
"""

_SESSION_COLUMNS: Final = "id, directory, git_root, server_session_id, created_at, updated_at, archived_at, head_id"


def _ts(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _session(row: tuple[object, ...]) -> StoredSession:
    sid, directory, git_root, server, created, updated, archived, head = row
    assert isinstance(sid, str) and isinstance(created, int) and isinstance(updated, int)
    return StoredSession(
        id=sid,
        directory=directory if isinstance(directory, str) else None,
        git_root=git_root if isinstance(git_root, str) else None,
        server_session_id=server if isinstance(server, str) else None,
        created_at=_ts(created),
        updated_at=_ts(updated),
        archived_at=_ts(archived) if isinstance(archived, int) else None,
        head_id=head if isinstance(head, str) else None,
    )


class SQLiteSessionService:
    """The reference store: one SQLite database in WAL mode.

    :param path: the database file.
    :param durability: ``"fsync"`` (``synchronous=FULL``) or ``"flush"`` (``synchronous=NORMAL``).
    :param per_event: one transaction per event, as the reference's manager writes.
    """

    def __init__(self, path: Path, *, durability: str = "fsync", per_event: bool = True) -> None:
        self.path = path
        self.per_event = per_event
        fresh = not path.exists()
        # Autocommit mode: transactions are explicit BEGIN/COMMIT, as sqlx issues them.
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={'FULL' if durability == 'fsync' else 'NORMAL'}")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(SCHEMA)
        if fresh:
            os.chmod(path, 0o600)

    def close(self) -> None:
        self.db.close()

    def create_session(self, session_id: str, directory: str | None, git_root: str | None) -> StoredSession:
        now = int(time.time())
        self.db.execute(
            "INSERT INTO sessions (id, directory, git_root, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
            (session_id, directory, git_root, now, now),
        )
        stored = self.get_session(session_id)
        assert stored is not None
        return stored

    def get_session(self, session_id: str) -> StoredSession | None:
        row = self.db.execute(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return _session(row) if row is not None else None

    def find_resumable(self, directory: str | None, git_root: str | None, max_age_secs: float) -> StoredSession | None:
        cutoff = int(time.time() - max_age_secs)
        row = self.db.execute(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE archived_at IS NULL AND updated_at > ? "
            "AND (directory = ? OR git_root = ?) ORDER BY updated_at DESC LIMIT 1",
            (cutoff, directory, git_root),
        ).fetchone()
        return _session(row) if row is not None else None

    def list_sessions(self, *, include_archived: bool = False) -> list[StoredSession]:
        where = "" if include_archived else "WHERE archived_at IS NULL"
        rows = self.db.execute(f"SELECT {_SESSION_COLUMNS} FROM sessions {where} ORDER BY updated_at DESC, id DESC")
        return [_session(row) for row in rows]

    def load_events(
        self, session_id: str, *, last: int | None = None, from_compaction: bool = False
    ) -> list[StoredEvent]:
        """The reference reads every event; a window is cut from them (it has no faster way)."""
        return cut_window(self._all_events(session_id), last, from_compaction, lambda e: e.event_type)

    def _all_events(self, session_id: str) -> list[StoredEvent]:
        rows = self.db.execute(
            "SELECT id, parent_id, invocation_id, event_type, event_data, created_at FROM session_events "
            "WHERE session_id = ? ORDER BY created_at, rowid",
            (session_id,),
        )
        return [
            StoredEvent(
                id=eid,
                session_id=session_id,
                parent_id=parent,
                invocation_id=inv,
                event_type=etype,
                event_data=data,
                created_at=_ts(created),
            )
            for eid, parent, inv, etype, data, created in rows
        ]

    def append_event(
        self,
        session_id: str,
        event_id: str,
        parent_id: str | None,
        invocation_id: str,
        event_type: str,
        event_data: str,
    ) -> None:
        event = StoredEvent(
            id=event_id,
            session_id=session_id,
            parent_id=parent_id,
            invocation_id=invocation_id,
            event_type=event_type,
            event_data=event_data,
            created_at=dt.datetime.now(dt.UTC),
        )
        self.append_events(session_id, [event])

    def append_events(self, session_id: str, events: Sequence[StoredEvent]) -> None:
        groups = [[event] for event in events] if self.per_event else [list(events)]
        for group in groups:
            now = int(time.time())
            with self._transaction():
                self.db.executemany(
                    "INSERT INTO session_events (id, session_id, parent_id, invocation_id, event_type, event_data, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(e.id, session_id, e.parent_id, e.invocation_id, e.event_type, e.event_data, now) for e in group],
                )
                self.db.execute(
                    "UPDATE sessions SET head_id = ?, updated_at = ? WHERE id = ?", (group[-1].id, now, session_id)
                )

    def update_server_session_id(self, session_id: str, server_session_id: str) -> None:
        self.db.execute("UPDATE sessions SET server_session_id = ? WHERE id = ?", (server_session_id, session_id))

    def archive(self, session_id: str) -> None:
        self.db.execute("UPDATE sessions SET archived_at = ? WHERE id = ?", (int(time.time()), session_id))

    def unarchive(self, session_id: str) -> None:
        self.db.execute("UPDATE sessions SET archived_at = NULL WHERE id = ?", (session_id,))

    def get_metadata(self, session_id: str, key: str) -> str | None:
        row = self.db.execute(
            "SELECT value FROM session_metadata WHERE session_id = ? AND key = ?", (session_id, key)
        ).fetchone()
        return str(row[0]) if row is not None else None

    def set_metadata(self, session_id: str, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO session_metadata (session_id, key, value, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(session_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (session_id, key, value, int(time.time())),
        )

    def fork_session(self, session_id: str, at_event_id: str | None = None) -> StoredSession:
        raise NotImplementedError("the reference design has no forks")

    def rewind(
        self, session_id: str, to_event_id: str | None, *, expected_head: str | EllipsisType | None = ...
    ) -> None:
        raise NotImplementedError("the reference design cannot rewind")

    def delete_session(self, session_id: str) -> None:
        raise NotImplementedError("the reference design deletes nothing")

    def restore_session(self, session_id: str) -> None:
        raise NotImplementedError("the reference design deletes nothing")

    def list_trash(self) -> list[TrashedSession]:
        return []

    def purge_trash(self, older_than_secs: float) -> int:
        return 0

    def verify(self, session_id: str) -> VerifyReport:
        """SQLite's own check of the whole database; the reference has no per-session check."""
        problems = [str(row[0]) for row in self.db.execute("PRAGMA integrity_check")]
        count = self.db.execute("SELECT COUNT(*) FROM session_events WHERE session_id = ?", (session_id,)).fetchone()
        return VerifyReport(
            session_id=session_id,
            path=str(self.path),
            size=self.path.stat().st_size,
            events=int(count[0]),
            heads=[],
            findings=[],
            unknown_types={} if problems == ["ok"] else {"integrity": len(problems)},
        )

    def reindex(self) -> None:
        self.db.execute("REINDEX")

    def _transaction(self) -> _Transaction:
        return _Transaction(self.db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")


class _SQLiteStore:
    def __init__(self, root: Path) -> None:
        self.service = SQLiteSessionService(root / "sessions.db")

    def find_resumable(self, directory: str, git_root: str | None, max_age_secs: float) -> str | None:
        found = self.service.find_resumable(directory, git_root, max_age_secs)
        return found.id if found is not None else None

    def list_sessions(self) -> int:
        return len(self.service.list_sessions())

    def verify_all(self) -> int:
        rows = list(self.service.db.execute("PRAGMA integrity_check"))
        return 0 if rows == [("ok",)] else len(rows)

    def reindex(self) -> None:
        self.service.reindex()

    def close(self) -> None:
        self.service.close()


class SQLitePeer:
    """The reference design driven by this library's :class:`SessionManager`.

    :param per_event: one transaction per event (the reference) or per turn.
    """

    def __init__(self, *, per_event: bool) -> None:
        self.per_event = per_event
        self.name = "sqlite-ref" if per_event else "sqlite-batched"
        self.description = (
            "reference schema on SQLite/WAL, one transaction per event (as the reference persists)"
            if per_event
            else "reference schema on SQLite/WAL, one transaction per turn"
        )

    def persister(self, root: Path, durability: str) -> Persist:
        return manager_persister(
            SQLiteSessionService(root / "sessions.db", durability=durability, per_event=self.per_event)
        )

    def resumer(self, root: Path, events: list[ConversationEvent]) -> Callable[[], list[Any]]:
        service = SQLiteSessionService(root / "sessions.db", durability="flush", per_event=False)
        return manager_resumer(service, write_history(service, events))

    def populate(self, root: Path, specs: list[SessionSpec]) -> None:
        service = SQLiteSessionService(root / "sessions.db", durability="flush", per_event=False)
        for spec in specs:
            manager = SessionManager.create_new(service, spec.directory, spec.git_root)
            manager._session_id = spec.id  # the same ids in every peer's store
            manager.persist_events(spec.events)
            for key, value in spec.metadata.items():
                service.set_metadata(spec.id, key, value)
            if spec.archived:
                service.archive(spec.id)
        service.close()

    def open_store(self, root: Path) -> _SQLiteStore:
        return _SQLiteStore(root)
