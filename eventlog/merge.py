"""Merging copies of one log: the union of their lines, in one deterministic order.

Two machines that append to copies of the same log end up with two files that
share a prefix and differ after it. Every line is a record with a unique id, so
the copies merge without loss by taking the union of their lines:

- a line is kept once, byte for byte (an identical line in two copies is one
  line); two *different* lines with the same id are both kept, and the reader
  takes the first (see :mod:`eventlog.chain`), so nothing is dropped silently;
- headers come first, then every other record in parent-link order: an event
  comes after its parent, and among records free to go next the smaller id
  goes first (ids are UUIDv7, so a single writer's log keeps its own order);
- lines that cannot be read are kept as they are, after everything else;
- bytes after the last newline (a torn tail) are not lines and are left out;
  :func:`merge_into` saves them to the trash.

The result depends only on the *set* of lines, so merging is commutative,
associative and idempotent, and every machine computes the same file. Nothing
in the order depends on clocks.
"""

from __future__ import annotations

import datetime as dt
import functools
import heapq
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from eventlog.chain import chain_records, head_and_count, is_linear
from eventlog.durability import atomic_write, ensure_private_dir
from eventlog.errors import EventLogError
from eventlog.reader import read_bytes
from eventlog.record import CHAIN_KINDS, KIND_EVENT, KIND_FACT, KIND_HEADER, Record, decode_record
from eventlog.summary import FactRef, LogState
from eventlog.trash import move_to_trash, save_to_trash

__all__ = ["LogChanged", "MergeOutcome", "MergedLog", "merge_into", "merge_logs", "merged_state"]


class LogChanged(EventLogError):
    """The target log kept changing while it was being merged (a sync tool replacing it); nothing was lost."""


@dataclass(frozen=True)
class MergedLog:
    """The union of some logs' lines (see the module rules)."""

    data: bytes
    """The merged log: complete lines in the merge order."""
    records: list[Record]
    """Every readable line, decoded, in the order of ``data``."""
    damaged: int
    """Lines that could not be read; they are at the end of ``data``."""

    @property
    def events(self) -> list[Record]:
        return [record for record in self.records if record.k == KIND_EVENT]

    @property
    def chain(self) -> list[Record]:
        """The events and the rewinds' head records, in merge order: what decides the tree."""
        return chain_records(self.records)


def merge_logs(logs: Iterable[bytes]) -> MergedLog:
    """Merge the complete lines of ``logs`` (see the module rules)."""
    lines: set[bytes] = set()
    for buf in logs:
        end = buf.rfind(b"\n") + 1
        lines.update(line for line in buf[:end].split(b"\n") if line.strip())
    groups: dict[str, list[tuple[bytes, Record]]] = {}
    damaged: list[bytes] = []
    for line in sorted(lines):
        try:
            record = decode_record(line)
        except (msgspec.DecodeError, RecursionError):
            damaged.append(line)
        else:
            groups.setdefault(record.id, []).append((line, record))
    out: list[bytes] = []
    records: list[Record] = []
    for record_id in _parent_order(groups):
        for line, record in groups[record_id]:
            out.append(line)
            records.append(record)
    out.extend(damaged)
    data = b"".join(line + b"\n" for line in out)
    return MergedLog(data=data, records=records, damaged=len(damaged))


def _parent_order(groups: dict[str, list[tuple[bytes, Record]]]) -> list[str]:
    """Ids in parent-link order, headers first, smaller ids first among the free ones.

    A parent cycle (only damaged or hand-edited logs have one) is broken at its
    smallest id, so every input still gives one answer.
    """

    def key(record_id: str) -> tuple[int, str]:
        return (0 if groups[record_id][0][1].k == KIND_HEADER else 1, record_id)

    children: dict[str, list[str]] = {}
    waiting: dict[str, str] = {}
    for record_id, variants in groups.items():
        # The first variant is the one readers take, so its parent is the one that counts.
        first = variants[0][1]
        if first.k == KIND_EVENT and first.parent is not None and first.parent in groups and first.parent != record_id:
            children.setdefault(first.parent, []).append(record_id)
            waiting[record_id] = first.parent
    ready = [key(rid) for rid in groups if rid not in waiting]
    heapq.heapify(ready)
    by_key = sorted(key(rid) for rid in groups)
    next_stuck = 0
    done: set[str] = set()
    order: list[str] = []
    while len(order) < len(groups):
        if not ready:
            while by_key[next_stuck][1] in done:
                next_stuck += 1
            ready.append(by_key[next_stuck])
        record_id = heapq.heappop(ready)[1]
        if record_id in done:
            continue
        done.add(record_id)
        order.append(record_id)
        for child in children.get(record_id, ()):
            if child not in done:
                heapq.heappush(ready, key(child))
    return order


def merged_state(merged: MergedLog) -> LogState:
    """A :class:`LogState` summarizing ``merged`` as if it were a log on disk.

    Across copies, file order means nothing, so the newest fact per key is the
    one with the larger ``(ts, id)``: every machine picks the same. Every fact
    value is kept inline, since there is no file whose offsets would find it.
    """
    state = LogState(size=len(merged.data), damaged=merged.damaged)
    events: list[Record] = []
    winners: dict[str, dict[str, tuple[dt.datetime, str]]] = {}
    for record in merged.records:
        if record.k in CHAIN_KINDS:
            events.append(record)
        elif record.k == KIND_FACT and record.type is not None:
            keyed = state.facts.setdefault(record.type, {})
            key = record.key or ""
            if key not in winners.get(record.type, {}) or (record.ts, record.id) > winners[record.type][key]:
                winners.setdefault(record.type, {})[key] = (record.ts, record.id)
                keyed[key] = FactRef(ts=record.ts, offset=-1, length=0, inline=record.data)
        else:
            state.fold(record, -1, 0)
    head, state.events = head_and_count(events)
    state.linear = is_linear(events)
    if head is not None:
        state.head_id, state.head_ts = head.id, head.ts
    return state


@dataclass(frozen=True)
class MergeOutcome:
    """What :func:`merge_into` did."""

    target: Path
    merged: MergedLog
    written: bool
    """False when the target already held every line of the sources."""
    trashed: list[Path]
    """Where the sources went; a source that changed during the merge is left in place."""
    kept: list[Path]
    """Sources left in place because they changed while being merged (merge again later)."""


def merge_into(
    target: Path,
    sources: Sequence[Path],
    *,
    trash_dir: Path,
    durable: bool = True,
    dry_run: bool = False,
    attempts: int = 5,
) -> MergeOutcome:
    """Merge ``sources`` into the log ``target``, then move the sources to ``trash_dir``.

    The caller holds the target's append lock. The merged log is written
    beside the target, synced, and renamed over it only if the target did not
    change meanwhile (a sync tool may replace it without taking our lock); only
    after that are the sources moved, so a crash at any point leaves every line
    in the target or in a source. A torn tail of the target is saved to
    ``trash_dir`` first.

    :param dry_run: compute the merge, change nothing.
    :raises LogChanged: if the target changed under every one of ``attempts`` tries.
    :raises UnsafeLogPath: if the target or a source is a symlink or not a regular file.
    :raises NotADirectoryError: if ``trash_dir`` is a symlink or not a directory (checked before any change).
    """
    if not dry_run:
        ensure_private_dir(trash_dir, durable=durable)
    for _ in range(attempts):
        before, base = _read_with_identity(target)
        copies = [(source, *_read_with_identity(source)) for source in sources]
        merged = merge_logs([base, *(buf for _, _, buf in copies)])
        if dry_run:
            return MergeOutcome(target, merged, merged.data != base, [], [])
        torn = base[base.rfind(b"\n") + 1 :]
        if torn:
            save_to_trash(trash_dir, f"{target.name}.torn-{len(base) - len(torn)}.bin", torn, durable=durable)
        written = merged.data != base
        # A sync tool does not take our lock: if it replaced the target since we read it,
        # renaming over it would drop what it brought, so read again instead.
        if written and not atomic_write(
            target, merged.data, durable=durable, only_if=functools.partial(_unchanged, target, before)
        ):
            continue
        trashed: list[Path] = []
        kept: list[Path] = []
        for source, seen, _ in copies:
            if seen is None:
                continue  # gone already (another merge moved it)
            if _unchanged(source, seen):
                trashed.append(move_to_trash(source, trash_dir, durable=durable))
            else:
                kept.append(source)
        return MergeOutcome(target, merged, written, trashed, kept)
    raise LogChanged(f"{target} kept changing while it was being merged; nothing was lost, try again later")


_Identity = tuple[int, int, int] | None


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_size, st.st_ctime_ns)


def _read_with_identity(path: Path) -> tuple[_Identity, bytes]:
    """The file's bytes and the (inode, size, ctime) they came from; a missing file is empty."""
    try:
        st = os.lstat(path)
        data = read_bytes(path, 0)
    except FileNotFoundError:
        return None, b""
    # A file replaced between lstat and read would pair old identity with new bytes;
    # the identity check before the rename then fails and the merge starts over.
    return _identity(st), data


def _unchanged(path: Path, seen: _Identity) -> bool:
    try:
        return _identity(os.lstat(path)) == seen
    except FileNotFoundError:
        return seen is None
