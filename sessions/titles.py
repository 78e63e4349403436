"""A session's title, for lists and pickers: the one the application set, else the first thing the user said."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final

import msgspec

from eventlog import KIND_EVENT, decode_record
from sessions.errors import SessionsError

if TYPE_CHECKING:
    from sessions.store import LocalSessionService

__all__ = ["TITLE_KEY", "first_user_message", "one_line", "title_of"]

TITLE_KEY: Final = "title"
"""Metadata key an application sets to name a session (``manager.set_metadata("title", ...)``)."""
_SCAN_LIMIT: Final = 1 << 20
"""How far into a log to look for the first user message: a conversation has one long before this."""
_CHUNK: Final = 1 << 16
_content: Final = msgspec.json.Decoder(dict[str, object])


def one_line(text: str, limit: int = 200) -> str:
    """``text`` on one line, whitespace runs made single spaces, cut with ``…`` past ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def first_user_message(log_path: str | os.PathLike[str]) -> str | None:
    """The content of the first ``user_message`` event in the log, read from its start (at most 1 MiB)."""
    try:
        fd = os.open(log_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        pending = b""
        offset = 0
        while offset < _SCAN_LIMIT:
            chunk = os.pread(fd, _CHUNK, offset)
            if not chunk:
                return None
            offset += len(chunk)
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for line in lines:
                if b'"user_message"' not in line:
                    continue
                try:
                    record = decode_record(line)
                    if record.k != KIND_EVENT or record.type != "user_message":
                        continue
                    content = _content.decode(record.data).get("content")
                except (msgspec.DecodeError, RecursionError):
                    continue
                if isinstance(content, str):
                    return content
        return None
    finally:
        os.close(fd)


def title_of(service: LocalSessionService, session_id: str) -> str:
    """The session's title on one line: metadata ``title`` if the application set it, else its first user
    message, else an empty string."""
    try:
        title = service.get_metadata(session_id, TITLE_KEY)
    except SessionsError:
        title = None
    if not title:
        try:
            title = first_user_message(service.log_path(session_id))
        except ValueError:
            title = None
    return one_line(title or "")
