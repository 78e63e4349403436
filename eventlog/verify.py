"""Checking a log: chain integrity, duplicates, gaps, forks and damaged lines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec

from eventlog.chain import build_tree
from eventlog.reader import Damage, decode_each, read_bytes, split_torn
from eventlog.record import FORMAT_VERSION, KIND_EVENT, KIND_FACT, KIND_HEAD, KIND_HEADER, Record

__all__ = ["Finding", "LogReport", "verify_log"]


class Finding(msgspec.Struct, frozen=True):
    """One problem found at byte ``offset`` of the log."""

    offset: int
    kind: str
    """``damaged``, ``torn_tail``, ``duplicate``, ``gap``, ``unknown_kind``, ``header``,
    or a kind the caller's ``check_event`` chose."""
    detail: str


class LogReport(msgspec.Struct, kw_only=True):
    """What :func:`verify_log` found."""

    path: str
    size: int
    records: int
    events: int
    heads: list[str]
    """Branch tips, the active head first; more than one means the log forked."""
    findings: list[Finding]

    @property
    def forked(self) -> bool:
        return len(self.heads) > 1

    @property
    def ok(self) -> bool:
        """No damaged line and no torn tail (forks, duplicates and gaps are reported, not damage)."""
        return not self.damaged

    @property
    def damaged(self) -> list[Finding]:
        return [f for f in self.findings if f.kind in ("damaged", "torn_tail")]


EventCheck = Callable[[Record], "tuple[str, str] | None"]
"""Inspects one event for the layer above; returns ``(kind, detail)`` of a finding, or None."""


def verify_log(path: Path, check_event: EventCheck | None = None) -> LogReport:
    """Read the whole log at ``path`` and report every problem with its byte offset.

    :param check_event: called on each event; a finding it returns is reported at the event's offset.
    """
    buf = read_bytes(path, 0)
    body, _, torn = split_torn(buf, 0)
    records, offsets, _, damaged = decode_each(body, 0)
    findings = [Finding(d.offset, "damaged", d.reason) for d in damaged]
    if torn is not None:
        findings.append(_torn(torn))
    offset_of: dict[int, int] = {}
    events = []
    for record, offset in zip(records, offsets, strict=True):
        offset_of[id(record)] = offset
        if record.k == KIND_HEAD:
            events.append(record)
        elif record.k == KIND_EVENT:
            events.append(record)
            found = check_event(record) if check_event is not None else None
            if found is not None:
                findings.append(Finding(offset, *found))
        elif record.k == KIND_HEADER:
            if offset != 0:
                findings.append(Finding(offset, "header", "a header line after the start of the log"))
            elif record.v is not None and record.v > FORMAT_VERSION:
                findings.append(Finding(offset, "header", f"format version {record.v} is newer than {FORMAT_VERSION}"))
        elif record.k != KIND_FACT:
            findings.append(Finding(offset, "unknown_kind", f"record kind {record.k!r} is unknown; kept as is"))
    if records and records[0].k != KIND_HEADER:
        findings.append(Finding(offsets[0], "header", "the log does not start with a header line"))
    tree = build_tree(events)
    for record in tree.duplicates:
        findings.append(Finding(offset_of[id(record)], "duplicate", f"event {record.id} appears again"))
    for record in tree.gaps:
        findings.append(
            Finding(
                offset_of[id(record)], "gap", f"event {record.id} names parent {record.parent}, which is not before it"
            )
        )
    findings.sort(key=lambda f: f.offset)
    return LogReport(
        path=str(path),
        size=len(buf),
        records=len(records),
        events=len(tree.events),
        heads=tree.heads,
        findings=findings,
    )


def _torn(torn: Damage) -> Finding:
    return Finding(torn.offset, "torn_tail", f"{torn.length} bytes after the last newline (a write cut short)")
