"""Searching event content across a store, at close to the speed of ``grep`` over the logs.

A regular expression is matched against the text values of each event's payload (a message, a tool's
output, a command), not against the JSON around them. Decoding every line of every log would cost far more
than reading it, so the log bytes are scanned first for a literal the pattern cannot match without (its
longest run of plain characters, found in its parsed form): only lines that hold it are decoded and
matched for real. The literal is made of printable ASCII other than ``"``, ``\\`` and ``/``, the
characters a JSON encoder may escape, so a line whose decoded text matches always holds it as bytes. A
pattern without such a literal (``.*``, ``\\d+``) is matched against every event, which is slower.
"""

from __future__ import annotations

import datetime as dt
import mmap
import os
import re
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any, Final, NamedTuple

import msgspec

from eventlog import KIND_EVENT, decode_record

__all__ = ["Hit", "Searcher", "required_literals"]

# The parser behind re: the documented sre_parse name warns on import since Python 3.11.
_parser: Any = __import__("re._parser", fromlist=["parse"])
_constants: Any = __import__("re._constants", fromlist=["LITERAL"])

_SAFE: Final = frozenset(c for c in range(0x20, 0x7F) if chr(c) not in '"\\/')
"""Characters every JSON encoder writes as themselves."""
_SNIPPET_BEFORE: Final = 30
_SNIPPET_AFTER: Final = 60
_values: Final = msgspec.json.Decoder()


class Hit(NamedTuple):
    """One event whose content matched: where, and the text around the first match."""

    session_id: str
    event_id: str
    event_type: str
    created_at: dt.datetime
    snippet: str
    """The match with some text either side, on one line."""
    match: tuple[int, int]
    """Where the match is in ``snippet``."""


def required_literals(pattern: str, flags: int = 0) -> list[str] | None:
    """Strings one of which every match of ``pattern`` contains, as plain safe characters; None if there are none.

    A case-insensitive pattern gives none if a literal has letters whose case folds outside ASCII (``k``, ``s``).
    """
    parsed = _parser.parse(pattern, flags)
    ignore_case = bool(parsed.state.flags & re.IGNORECASE)
    found = _required(list(parsed), ignore_case)
    return found or None


def _required(items: list[tuple[Any, Any]], ignore_case: bool) -> list[str]:
    """The best set of alternatives one of which a match of this sequence must contain ([] if none)."""
    c = _constants
    best: list[str] = []
    run = ""

    def better(candidate: list[str]) -> None:
        nonlocal best
        if candidate and (not best or min(map(len, candidate)) > min(map(len, best))):
            best = candidate

    for op, av in items:
        if op is c.LITERAL and av in _SAFE and not (ignore_case and chr(av).lower() in "ks"):
            run += chr(av)
            continue
        better([run] if run else [])
        run = ""
        if op is c.SUBPATTERN:
            _group, add_flags, _del_flags, sub = av
            better(_required(list(sub), ignore_case or bool(add_flags & re.IGNORECASE)))
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)) and av[0] >= 1:
            better(_required(list(av[2]), ignore_case))
        elif op is getattr(c, "ATOMIC_GROUP", None):
            better(_required(list(av), ignore_case))
        elif op is c.BRANCH:
            alternatives = [_required(list(branch), ignore_case) for branch in av[1]]
            if all(alternatives):
                better(sorted({text for alternative in alternatives for text in alternative}))
    better([run] if run else [])
    return best


class Searcher:
    """A compiled search: the pattern, and the byte scan that finds the lines worth decoding."""

    def __init__(
        self,
        pattern: str,
        *,
        types: Collection[str] | None = None,
        since: dt.datetime | None = None,
        ignore_case: bool = False,
    ) -> None:
        """
        :param types: only events of these types (``user_message``, ``text``, ``tool_result``...).
        :param since: only events written at or after this time.
        :raises re.error: for a pattern that is not a regular expression.
        """
        flags = re.IGNORECASE if ignore_case else 0
        self.pattern = re.compile(pattern, flags)
        self.types = frozenset(types) if types else None
        self.since = since
        literals = required_literals(pattern, flags)
        self._scan: re.Pattern[bytes] | None = None
        self._literal: bytes | None = None
        if literals is not None:
            case = re.IGNORECASE if self.pattern.flags & re.IGNORECASE else 0
            if len(literals) == 1 and not case:
                self._literal = literals[0].encode()  # bytes.find: a two-way search, as fast as grep's
            else:
                self._scan = re.compile(b"|".join(re.escape(t.encode()) for t in literals), case)

    def search_log(self, session_id: str, path: Path) -> Iterator[Hit]:
        """The events of one log that match, in file order (every branch; a torn last line is not read)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                return
            data = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        try:
            for start, end in self._candidate_lines(data):
                hit = self._match_line(session_id, data[start:end])
                if hit is not None:
                    yield hit
        finally:
            data.close()

    def _candidate_lines(self, data: mmap.mmap) -> Iterator[tuple[int, int]]:
        """(start, end) of each whole line that may match: each holding the literal, or every line."""
        at = 0
        while True:
            if self._literal is not None:
                found = data.find(self._literal, at)
            elif self._scan is not None:
                match = self._scan.search(data, at)
                found = match.start() if match else -1
            else:
                found = at if at < len(data) else -1
            if found < 0:
                return
            start = data.rfind(b"\n", 0, found) + 1
            end = data.find(b"\n", found)
            if end < 0:
                return  # a torn tail: not a line yet
            yield start, end
            at = end + 1

    def _match_line(self, session_id: str, line: bytes) -> Hit | None:
        try:
            record = decode_record(line)
        except (msgspec.DecodeError, RecursionError):
            return None  # a damaged line: `sessions verify` reports it
        if record.k != KIND_EVENT or (self.types is not None and record.type not in self.types):
            return None
        if self.since is not None and record.ts < self.since:
            return None
        try:
            payload = _values.decode(record.data)
        except (msgspec.DecodeError, RecursionError):
            return None
        for text in _texts(payload):
            match = self.pattern.search(text)
            if match is not None:
                snippet, span = _snippet(text, match.start(), match.end())
                return Hit(session_id, record.id, record.type or "", record.ts, snippet, span)
        return None


def _texts(value: object) -> Iterator[str]:
    """The string values in a decoded payload, depth first (keys are the format's, not content)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def _snippet(text: str, start: int, end: int) -> tuple[str, tuple[int, int]]:
    """The match with some context, whitespace runs made single spaces, and where the match is in it."""
    lo, hi = max(0, start - _SNIPPET_BEFORE), min(len(text), end + _SNIPPET_AFTER)
    before = " ".join(text[lo:start].split(" ")).replace("\n", " ").replace("\t", " ")
    found = text[start:end].replace("\n", " ").replace("\t", " ")
    after = text[end:hi].replace("\n", " ").replace("\t", " ")
    before = ("…" if lo > 0 else "") + before.lstrip()
    after = after.rstrip() + ("…" if hi < len(text) else "")
    return before + found + after, (len(before), len(before) + len(found))
