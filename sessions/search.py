"""Searching event content across a store, at close to the speed of ``grep`` over the logs.

A regular expression is matched against the content of each event as the standard events it stands for (an
imported tool's line as the messages, tool calls and results it holds): what the user and the assistant said,
a tool call's name and input (as compact JSON), a tool's output, reasoning, a compaction's summary. Ids,
times, working folders, a line's ``type`` and an imported line's other fields are not content.

Decoding every line of every log would cost far more than reading it, so the log bytes are scanned first for
a literal the pattern cannot match without (its longest run of plain characters, found in its parsed form):
only lines that hold it are decoded and matched for real. The literal is made of printable ASCII that
appears in a log line as itself wherever the content has it: not ``"``, ``\\`` and ``/`` (a JSON encoder may
escape them), nor ``:,[]{}`` (a tool call's input is matched as compact JSON, which another tool's file may
have spaced out), and, ignoring case, no letter that ``re`` also matches with a character outside ASCII
(``i``: U+0130 and U+0131; ``k``: the Kelvin sign; ``s``: the long s). A pattern without such a literal
(``.*``, ``\\d+``) is matched against every event, which is slower.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import mmap
import os
import re
import string
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any, Final, NamedTuple

import msgspec

from eventlog import KIND_EVENT, decode_record
from sessions.events import (
    EVENT_TYPES,
    Attachment,
    Compaction,
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
)

__all__ = ["Hit", "Searcher", "required_literals"]

# The parser behind re: the documented sre_parse name warns on import since Python 3.11.
_parser: Any = __import__("re._parser", fromlist=["parse"])
_constants: Any = __import__("re._constants", fromlist=["LITERAL"])

_SAFE: Final = frozenset(c for c in range(0x20, 0x7F) if chr(c) not in '"\\/:,[]{}')
"""Characters a log line holds as themselves wherever the searched text has them (see the module's text)."""
_SNIPPET_BEFORE: Final = 30
_SNIPPET_AFTER: Final = 60
_compact: Final = msgspec.json.Encoder()
_any: Final = msgspec.json.Decoder()
_WHITESPACE: Final = re.compile(r"\s+")


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

    Where case is ignored, a literal holds no letter that ``re`` also matches with a character outside ASCII
    (``i``, ``k``, ``s``).
    """
    found = _literals(pattern, flags)
    return [text for text, _ in found] or None


def _literals(pattern: str, flags: int) -> list[tuple[str, bool]]:
    """:func:`required_literals`, each with whether it came from a part of the pattern that ignores case."""
    parsed = _parser.parse(pattern, flags)
    return _required(list(parsed), bool(parsed.state.flags & re.IGNORECASE))


@functools.cache
def _folding_outside_ascii() -> frozenset[str]:
    """The ASCII letters ``re``, ignoring case, also matches with a character outside ASCII, asked of ``re``.

    Only the Basic Multilingual Plane is asked (7 ms, not 250): no character beyond it has a case mapping
    into ASCII.
    """
    others = "".join(map(chr, range(0x80, 0xD800))) + "".join(map(chr, range(0xE000, 0x10000)))
    found = set(re.findall("[a-z]", others, re.IGNORECASE))
    return frozenset(
        letter for letter in string.ascii_letters if any(re.fullmatch(letter, other, re.IGNORECASE) for other in found)
    )


def _required(items: list[tuple[Any, Any]], ignore_case: bool) -> list[tuple[str, bool]]:
    """The best set of alternatives one of which a match of this sequence must contain ([] if none), each with
    whether case is ignored where it was found."""
    c = _constants
    best: list[tuple[str, bool]] = []
    run = ""
    unsafe = _folding_outside_ascii() if ignore_case else frozenset()

    def better(candidate: list[tuple[str, bool]]) -> None:
        nonlocal best
        if candidate and (not best or min(len(t) for t, _ in candidate) > min(len(t) for t, _ in best)):
            best = candidate

    for op, av in items:
        if op is c.LITERAL and av in _SAFE and chr(av) not in unsafe:
            run += chr(av)
            continue
        better([(run, ignore_case)] if run else [])
        run = ""
        if op is c.SUBPATTERN:
            _group, add_flags, del_flags, sub = av
            scoped = (ignore_case or bool(add_flags & re.IGNORECASE)) and not del_flags & re.IGNORECASE
            better(_required(list(sub), scoped))
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)) and av[0] >= 1:
            better(_required(list(av[2]), ignore_case))
        elif op is getattr(c, "ATOMIC_GROUP", None):
            better(_required(list(av), ignore_case))
        elif op is c.BRANCH:
            alternatives = [_required(list(branch), ignore_case) for branch in av[1]]
            if all(alternatives):
                better(sorted({found for alternative in alternatives for found in alternative}))
    better([(run, ignore_case)] if run else [])
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
        deserialize: Callable[[str, msgspec.Raw], EventBase] = deserialize_event,
    ) -> None:
        """
        :param types: only standard events of these types (``user_message``, ``text``, ``tool_result``...):
            an imported tool's line is each standard event it stands for, never its own type.
        :param since: only events written at or after this time.
        :param deserialize: how the store types a stored event (``LocalSessionService.deserialize_event`` for a
            store with imported sessions or an application's own types); the standard types by default.
        :raises re.error: for a pattern that is not a regular expression.
        """
        flags = re.IGNORECASE if ignore_case else 0
        self.pattern = re.compile(pattern, flags)
        self.types = frozenset(types) if types else None
        self.since = since
        self._deserialize = deserialize
        literals = _literals(pattern, flags)
        self._scan: re.Pattern[bytes] | None = None
        self._literal: bytes | None = None
        if literals:
            # A literal from a part that ignores case is looked for in either case: (?i:THREAD) finds "Thread".
            case = re.IGNORECASE if any(folded for _, folded in literals) else 0
            if len(literals) == 1 and not case:
                self._literal = literals[0][0].encode()  # bytes.find: a two-way search, as fast as grep's
            else:
                self._scan = re.compile(b"|".join(re.escape(t.encode()) for t, _ in literals), case)

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
        if record.k != KIND_EVENT or record.type is None:
            return None
        if self.since is not None and record.ts < self.since:
            return None
        if self.types is not None and record.type in EVENT_TYPES and record.type not in self.types:
            return None  # a standard event is itself: skipped without decoding it
        for event in self._deserialize(record.type, record.data).standard():
            event_type = event.type if isinstance(event, UnknownEvent) else event.TYPE
            if self.types is not None and event_type not in self.types:
                continue
            for text in _content(event):
                match = self.pattern.search(text)
                if match is not None:
                    snippet, span = _snippet(text, match.start(), match.end())
                    return Hit(session_id, record.id, event_type, record.ts, snippet, span)
        return None


def _content(event: EventBase) -> Iterator[str]:
    """The text of a standard event that is its content; nothing of other events (ids, flags, metadata)."""
    if isinstance(event, UserMessage | Text | SystemContext | ToolResult):
        yield event.content
    elif isinstance(event, ToolCall):
        yield event.name
        yield event.input if isinstance(event.input, str) else _compact.encode(event.input).decode()
    elif isinstance(event, Reasoning):
        yield event.text
        yield from event.summary or ()
    elif isinstance(event, Compaction):
        yield event.summary
    elif isinstance(event, OutOfBandOutput):
        if event.command:
            yield event.command
        yield event.content
    elif isinstance(event, SkillInvocation):
        yield event.name
        if event.arguments:
            yield event.arguments
        yield event.content
    elif isinstance(event, Attachment):
        yield event.name
    elif isinstance(event, UnknownEvent):
        # A type this store does not know (a newer version's, another application's): all its text is searched.
        with contextlib.suppress(msgspec.DecodeError, RecursionError):
            yield from _strings(_any.decode(event.data))
    elif type(event).TYPE not in EVENT_TYPES:  # an application's own type: its fields but meta
        yield from _strings({k: v for k, v in msgspec.structs.asdict(event).items() if k != "meta"})


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _snippet(text: str, start: int, end: int) -> tuple[str, tuple[int, int]]:
    """The match with some context, whitespace runs made single spaces, and where the match is in it."""
    lo, hi = max(0, start - _SNIPPET_BEFORE), min(len(text), end + _SNIPPET_AFTER)
    # A run cut by the end of a prefix is one space in the prefix and in the whole: the prefixes give the span.
    before, through, whole = (_WHITESPACE.sub(" ", text[lo:at]) for at in (start, end, hi))
    lead = len(before) - len(before.lstrip())
    head = "…" if lo > 0 else ""
    snippet = head + whole[lead : len(through)] + whole[len(through) :].rstrip() + ("…" if hi < len(text) else "")
    return snippet, (len(head) + len(before) - lead, len(head) + len(through) - lead)
