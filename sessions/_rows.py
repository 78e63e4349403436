"""The index's rows: what listing and finding sessions need, one small row per session.

A row holds a session's :class:`~sessions.models.StoredSession` fields and the
log bytes it covers (inode, size with any torn tail, mtime). It is used only
while ``lstat`` of the log still shows exactly those bytes; anything else goes
to the full summaries (:mod:`sessions.index`), and from there to the log. The
rows file also keeps the last trusted listing of ``ROOT/sessions``, so a new
process that finds the folder's mtime unchanged need not list 10,000 names.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import msgspec

from eventlog import FactRef, LogState, decode_record
from sessions.models import StoredSession

__all__ = [
    "FACT_ARCHIVED",
    "FACT_SERVER_SESSION",
    "ROWS_FORMAT",
    "Listing",
    "Row",
    "Rows",
    "loads_str",
    "loads_true",
    "read_fact",
    "row_of",
]

ROWS_FORMAT: Final = 2
FACT_SERVER_SESSION: Final = "server_session_id"
FACT_ARCHIVED: Final = "archived"
LOG_SUFFIX: Final = ".jsonl"


class Row(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """One session as ``list_sessions`` returns it, and the log bytes that say so.

    ``gc=False``: a row holds no containers, and 10,000 rows tracked by the cycle
    collector made it run during a cold load (a third of the decode).
    """

    directory: str | None
    git_root: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    archived_at: dt.datetime | None = None
    server_session_id: str | None = None
    server_fact: tuple[int, int] | None = None
    """Offset and length of the server id's line when the id is too long to keep here."""
    head_id: str | None = None
    event_count: int = 0
    ino: int
    size: int
    """Bytes of the log, a torn tail included."""
    mtime_ns: int

    def is_current(self, st: os.stat_result) -> bool:
        """True if the log (as ``lstat`` saw it) holds exactly the bytes this row covers."""
        return (st.st_ino, st.st_size, st.st_mtime_ns) == (self.ino, self.size, self.mtime_ns)

    def session(self, session_id: str, sessions_dir: str) -> StoredSession:
        server = self.server_session_id
        if self.server_fact is not None:
            offset, length = self.server_fact
            ref = FactRef(ts=self.created_at, id="", offset=offset, length=length)
            raw = read_fact(os.path.join(sessions_dir, f"{session_id}{LOG_SUFFIX}"), ref)
            server = loads_str(raw) if raw is not None else None
        return StoredSession(
            id=session_id,
            directory=self.directory,
            git_root=self.git_root,
            server_session_id=server,
            created_at=self.created_at,
            updated_at=self.updated_at,
            archived_at=self.archived_at,
            head_id=self.head_id,
            event_count=self.event_count,
        )


class Listing(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A listing of ``ROOT/sessions`` taken once its mtime was old enough to trust (see the service).

    The logs listed are the rows' sessions minus ``gone`` plus ``unindexed``.
    """

    mtime_ns: int
    unindexed: list[str] = []
    gone: list[str] = []
    others: list[str] = []
    """Every other name in the folder that a sync tool's conflict copy may have."""


class _RowsFile(msgspec.Struct, kw_only=True):
    format: int
    listing: Listing | None = None
    git_roots: dict[str, list[str]] = {}
    """For each git root, the keys of ``places`` holding its sessions."""
    places: dict[str, dict[str, Row]]
    """Rows by session id, grouped by directory ("" for none): a lookup decodes only its groups."""


class _StoredRowsFile(msgspec.Struct, kw_only=True):
    """The rows file as read, each group left raw until it is used."""

    format: int
    listing: Listing | None = None
    git_roots: dict[str, list[str]] = {}
    places: dict[str, msgspec.Raw]


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(_StoredRowsFile)
_group_decoder: Final = msgspec.json.Decoder(dict[str, Row])
_str_decoder: Final = msgspec.json.Decoder(str)
_bool_decoder: Final = msgspec.json.Decoder(bool)
_DECODE_ERRORS: Final = (msgspec.DecodeError, RecursionError, UnicodeDecodeError)
"""msgspec raises UnicodeDecodeError, not DecodeError, for invalid UTF-8 in a string."""


class Rows:
    """The rows in memory, by session id, with their places and the saved folder listing.

    Rows read from the file stay raw, a group per directory, until asked for:
    finding a session in one directory decodes that directory's rows only.
    """

    def __init__(self) -> None:
        self._rows: dict[str, Row] = {}
        self._groups: dict[str, msgspec.Raw] = {}
        self._git_roots: dict[str, list[str]] = {}
        self._saved: Listing | None = None
        """The listing as read, relative to the rows read with it (resolved on the first full decode)."""
        self._listing: tuple[int, frozenset[str], tuple[str, ...]] | None = None
        self._by_place: dict[str, set[str]] | None = None
        self.damaged = False
        """True if a group turned out damaged: every row was dropped, and the file should be rewritten."""

    @property
    def by_id(self) -> dict[str, Row]:
        """Every row, by session id (decodes the groups not decoded yet)."""
        return self._decode_all()

    def _decode_all(self) -> dict[str, Row]:
        if self._groups:
            self._decode(list(self._groups))
        if self._saved is not None:
            saved, self._saved = self._saved, None
            ids = set(self._rows).difference(saved.gone)
            ids.update(saved.unindexed)
            self._listing = (saved.mtime_ns, frozenset(ids), tuple(saved.others))
        return self._rows

    @property
    def listing(self) -> tuple[int, frozenset[str], tuple[str, ...]] | None:
        """``(mtime_ns, log ids, other names)`` of ``ROOT/sessions`` as last trusted."""
        if self._saved is not None:
            self._decode_all()  # resolves the saved listing against every row
        return self._listing

    @listing.setter
    def listing(self, value: tuple[int, frozenset[str], tuple[str, ...]] | None) -> None:
        self._decode_all()  # a saved listing must not be resolved against rows put later
        self._listing = value

    def saved_listing(self, mtime_ns: int) -> Listing | None:
        """The listing read from the file if it was taken at ``mtime_ns`` and not resolved yet."""
        saved = self._saved
        return saved if saved is not None and saved.mtime_ns == mtime_ns else None

    def take_in(self, data: bytes) -> bool:
        """Take in the rows of a saved rows file; False (and nothing changed) if ``data`` is not one.

        A row of ours is kept over the saved one only if it covers more of the same log.
        """
        try:
            loaded = _decoder.decode(data)
        except _DECODE_ERRORS:
            return False
        if loaded.format != ROWS_FORMAT:
            return False
        mine = self.by_id
        self._rows, self._groups, self._git_roots = {}, loaded.places, loaded.git_roots
        self._saved, self._by_place, self.damaged = loaded.listing, None, False
        if not mine:
            return True  # a new process: the groups are decoded when asked for
        theirs = self.by_id
        for session_id, row in mine.items():
            saved = theirs.get(session_id)
            if saved is None or (saved.ino == row.ino and saved.size < row.size):
                theirs[session_id] = row
        return not self.damaged

    def _decode(self, keys: Iterable[str]) -> bool:
        rows = self._rows
        for key in keys:
            raw = self._groups.pop(key, None)
            if raw is None:
                continue
            try:
                group = _group_decoder.decode(raw)
            except _DECODE_ERRORS:
                self._rows, self._groups, self._saved, self._listing = {}, {}, None, None
                self.damaged = True
                return False
            for session_id, row in group.items():
                rows.setdefault(session_id, row)  # a row put since the file was read is newer
            self._by_place = None
        return True

    def encode(self) -> bytes:
        by_id = self.by_id
        listing = None
        if self._listing is not None:
            mtime_ns, ids, others = self._listing
            listing = Listing(
                mtime_ns=mtime_ns,
                unindexed=sorted(ids.difference(by_id)),
                gone=sorted(set(by_id).difference(ids)),
                others=list(others),
            )
        places: dict[str, dict[str, Row]] = {}
        git_roots: dict[str, set[str]] = {}
        for session_id, row in by_id.items():
            key = row.directory or ""
            places.setdefault(key, {})[session_id] = row
            if row.git_root is not None:
                git_roots.setdefault(row.git_root, set()).add(key)
        document = _RowsFile(
            format=ROWS_FORMAT,
            listing=listing,
            git_roots={root: sorted(keys) for root, keys in git_roots.items()},
            places=places,
        )
        return _encoder.encode(document)

    def put(self, session_id: str, row: Row) -> None:
        self.by_id[session_id] = row
        self._by_place = None

    def drop(self, session_ids: set[str]) -> None:
        by_id = self.by_id
        for session_id in session_ids:
            by_id.pop(session_id, None)
        self._by_place = None

    def in_place(self, directory: str | None, git_root: str | None) -> dict[str, Row] | None:
        """The rows whose directory or git root is one of these (a superset: check which).

        Decodes only the groups that may hold them. None if one of them is damaged
        (every row is dropped then, see :attr:`damaged`).
        """
        if self._groups:
            keys = set(self._git_roots.get(git_root, ())) if git_root is not None else set()
            if directory is not None:
                keys.add(directory)
            if not self._decode(keys):
                return None
        by_place = self._by_place
        if by_place is None:
            by_place = self._by_place = {}
            for session_id, row in self._rows.items():
                if row.directory is not None:
                    by_place.setdefault(row.directory, set()).add(session_id)
                if row.git_root is not None:
                    by_place.setdefault(row.git_root, set()).add(session_id)
        rows = self._rows
        return {
            session_id: rows[session_id]
            for where in (directory, git_root)
            if where is not None
            for session_id in by_place.get(where, ())
        }


def row_of(directory: str | None, git_root: str | None, created_at: dt.datetime, log: LogState) -> Row:
    """The row of a session whose header says ``directory``, ``git_root``, ``created_at``, summarized by ``log``."""
    server = log.fact(FACT_SERVER_SESSION)
    server_id = server_fact = None
    if server is not None:
        raw = server.value
        if raw is None:  # too long to be kept in the summary: read from its line when asked
            server_fact = (server.offset, server.length)
        else:
            server_id = loads_str(raw)
    archived = log.fact(FACT_ARCHIVED)
    archived_at = None
    if archived is not None and archived.value is not None and loads_true(archived.value):
        archived_at = archived.ts
    updated_at = created_at
    if log.head_ts is not None and log.head_ts > updated_at:
        updated_at = log.head_ts
    return Row(
        directory=directory,
        git_root=git_root,
        created_at=created_at,
        updated_at=updated_at,
        archived_at=archived_at,
        server_session_id=server_id,
        server_fact=server_fact,
        head_id=log.head_id,
        event_count=log.events,
        ino=log.ino,
        size=log.size + log.torn_bytes,
        mtime_ns=log.mtime_ns,
    )


def read_fact(path: str | Path, ref: FactRef) -> msgspec.Raw | None:
    """The value of a fact too large to be kept in the summary, read from its line (None if it is gone)."""
    try:
        with open(path, "rb") as f:
            f.seek(ref.offset)
            return decode_record(f.read(ref.length)).data
    except (OSError, msgspec.DecodeError):
        return None


def loads_true(raw: msgspec.Raw) -> bool:
    try:
        return _bool_decoder.decode(raw)
    except msgspec.DecodeError:
        return False


def loads_str(raw: msgspec.Raw) -> str | None:
    try:
        return _str_decoder.decode(raw)
    except msgspec.DecodeError:
        return None
