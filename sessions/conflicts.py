"""Stores carried between machines by Syncthing, Dropbox, git or rsync.

When two machines change the same session log before the sync tool has
carried one change over, the tool keeps both: the log, and a *conflict copy*
beside it. A session with conflict copies loads as the union of all of them
(see :mod:`eventlog.merge`): nothing is lost, and a conversation continued
differently on each machine becomes two branches of one tree.

:func:`merge_conflict_copies` makes that union permanent: it writes the merged
log atomically, and only then moves the copies to ``ROOT/trash/``. The next
append to a session does the same for that session, so a writer always
continues the head every reader sees.

Names recognised as copies of ``<id>.jsonl`` (anything else beside the logs,
such as ``.syncthing.*.tmp``, ``~*.tmp``, ``.dropbox*``, rsync's ``.<name>.XXXXXX``
and lock files, is ignored):

- Syncthing: ``<id>.sync-conflict-YYYYMMDD-HHMMSS-DEVICE.jsonl`` (also nested);
- Dropbox: ``<id> (HOST's conflicted copy YYYY-MM-DD).jsonl``, with an optional
  `` (N)`` after it; Nextcloud's ``<id> (conflicted copy ...).jsonl`` too;
- rsync ``--backup`` and ``cp --backup``: ``<id>.jsonl~``.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Final

from eventlog import KIND_EVENT, Finding, LogRead, LogState, UnsafeLogPath, atomic_write, build_tree, read_log
from eventlog.merge import LogChanged, MergedLog, merge_into, merge_logs, merged_state
from eventlog.reader import Damage, decode_each, read_bytes, split_torn
from sessions.errors import DamagedLogWarning, SessionBusy, SyncMergeError, UnsafeStorePath
from sessions.protocol import is_session_id

if TYPE_CHECKING:
    from sessions.store import LocalSessionService

__all__ = [
    "TEMPLATES",
    "CopiesMerged",
    "SyncMergeError",
    "conflict_copies",
    "conflict_copy_session",
    "copy_findings",
    "merge_conflict_copies",
    "merge_session_copies",
    "read_with_copies",
    "sync_template",
    "union_state",
    "write_sync_templates",
]

# An id never holds ".sync-conflict-", a space or "~" (sessions.protocol.check_session_id), so each
# pattern splits a name one way only. The id part is matched loosely here and checked after.
_COPY_NAMES: Final = (
    re.compile(r"(?P<id>[^ /]+?)(?:\.sync-conflict-\d{8}-\d{6}-[A-Z2-7]{7})+\.jsonl"),
    re.compile(r"(?P<id>[^ /]+) \((?:[^()/]*'s )?conflicted copy[^()/]*\)(?: \(\d+\))?\.jsonl"),
    re.compile(r"(?P<id>[^ /]+)\.jsonl~"),
)
# Only names holding one of these can be copies; nearly every name listed holds none.
_COPY_HINTS: Final = (".sync-conflict-", "conflicted copy", ".jsonl~")


def conflict_copy_session(name: str) -> str | None:
    """The session id whose log ``name`` is a conflict copy of, or None if it is not one."""
    if not any(hint in name for hint in _COPY_HINTS):
        return None
    for pattern in _COPY_NAMES:
        match = pattern.fullmatch(name)
        if match is not None:
            return match["id"] if is_session_id(match["id"]) else None
    return None


def conflict_copies(sessions_dir: Path) -> dict[str, list[Path]]:
    """Every conflict copy in ``sessions_dir``, by session id, each list sorted by name (listed afresh)."""
    found: dict[str, list[Path]] = {}
    for name in sorted(os.listdir(sessions_dir)):
        owner = conflict_copy_session(name)
        if owner is not None:
            found.setdefault(owner, []).append(sessions_dir / name)
    return found


def _read_union(log_path: Path, copies: Sequence[Path]) -> tuple[LogRead, MergedLog]:
    """The log and its copies merged; damage in a copy is reported with the copy's name."""
    main = read_bytes(log_path, 0)
    bufs = [main]
    read: list[Path] = []
    for copy in copies:
        try:
            buf = read_bytes(copy, 0)
        except FileNotFoundError:
            continue  # merged and moved to the trash meanwhile: its lines are in the log now
        except UnsafeLogPath as exc:
            warnings.warn(f"{exc}; conflict copy skipped", DamagedLogWarning, stacklevel=4)
            continue
        bufs.append(buf)
        read.append(copy)
    merged = merge_logs(bufs)
    # Finding which file a damaged line came from costs a second decode, so only when there is one.
    damage = [_damage(buf, checked=bool(merged.damaged)) for buf in bufs]
    for copy, (damaged, torn) in zip(read, damage[1:], strict=True):
        if damaged or torn:
            warnings.warn(
                f"{copy}: conflict copy has {len(damaged) + bool(torn)} damaged line(s); "
                "they were skipped, not deleted",
                DamagedLogWarning,
                stacklevel=4,
            )
    damaged, torn = damage[0]
    size = torn.offset if torn is not None else len(main)
    return LogRead(records=merged.records, damaged=damaged, torn=torn, size=size), merged


def _damage(buf: bytes, *, checked: bool) -> tuple[list[Damage], Damage | None]:
    body, _, torn = split_torn(buf, 0)
    return (decode_each(body, 0)[3] if checked else []), torn


def read_with_copies(log_path: Path, copies: Sequence[Path]) -> LogRead:
    """Read a session log, merged with its conflict copies if it has any.

    With copies, ``records`` holds the union's records in merge order (every
    machine reads the same); ``damaged``, ``torn`` and ``size`` describe the log itself.

    :raises FileNotFoundError: if there is no log.
    :raises UnsafeLogPath: if the log is a symlink or not a regular file.
    """
    if not copies:
        return read_log(log_path)
    return _read_union(log_path, copies)[0]


def union_state(log_path: Path, copies: Sequence[Path]) -> LogState | None:
    """The summary of a log and its copies merged, or None if the log is gone.

    It is never cached: it covers no single file, and the copies are gone after the next merge.
    """
    try:
        _, merged = _read_union(log_path, copies)
    except FileNotFoundError:
        return None
    return merged_state(merged)


@dataclass(frozen=True)
class CopiesMerged:
    """What merging one session's conflict copies found and did."""

    session_id: str
    copies: list[Path]
    added_events: int
    """Events in the copies that the log did not have."""
    heads: list[str]
    """Branch tips of the merged log, the active head first; more than one means it forked."""
    written: bool
    """Whether the log was rewritten (False on a dry run, or if it already held everything)."""
    trashed: list[Path]
    """Where the copies went in ``ROOT/trash/``."""
    kept: list[Path]
    """Copies left in place because they changed during the merge, or because of ``error``."""
    error: str | None = None

    @property
    def forked(self) -> bool:
        return len(self.heads) > 1

    def describe(self, *, dry_run: bool = False) -> str:
        """One line for a person: what was (or, on a dry run, would be) merged."""
        copies = f"{len(self.copies)} conflict cop{'y' if len(self.copies) == 1 else 'ies'}"
        if self.error is not None:
            return f"{self.session_id}: {copies} not merged, left in place: {self.error}"
        found = f"{self.added_events} new event(s)"
        if self.forked:
            found += f", {len(self.heads)} branches kept (active head {self.heads[0]})"
        if dry_run:
            return f"{self.session_id}: would merge {copies} ({found}) into the log, then move them to trash/"
        line = f"{self.session_id}: merged {copies} ({found}); moved {len(self.trashed)} to trash/"
        if self.kept:
            line += f"; {len(self.kept)} changed meanwhile and stay for the next run"
        return line


def merge_session_copies(
    service: LocalSessionService, session_id: str, *, dry_run: bool = False
) -> CopiesMerged | None:
    """Merge one session's conflict copies into its log (see :func:`eventlog.merge.merge_into`).

    :returns: what was done, or None if the session has no conflict copies.
    :raises SessionBusy: if a writer held the session's lock for longer than ``lock_timeout``.
    :raises SyncMergeError: if the log kept changing under a sync tool, or the disk or ``trash/`` refused.
    :raises UnsafeStorePath: if the log or a copy is a symlink or not a regular file.
    """
    log_path = service.log_path(session_id)
    copies = service.copies_of(session_id)
    if not copies:
        return None
    try:
        # A dry run changes nothing, so it need not wait for writers.
        with service.session_lock(session_id) if not dry_run else contextlib.nullcontext():
            before = _event_ids(log_path)
            outcome = merge_into(
                log_path,
                copies,
                trash_dir=service.trash_dir,
                durable=service.durability == "fsync",
                dry_run=dry_run,
            )
    except SessionBusy as exc:
        raise SessionBusy(
            f"session {session_id} is busy (another process is appending); its conflict copies were not merged, "
            "try again"
        ) from exc
    except LogChanged as exc:
        raise SyncMergeError(f"session {session_id}: {exc}") from exc
    except UnsafeLogPath as exc:
        raise UnsafeStorePath(f"session {session_id}: {exc}") from exc
    except OSError as exc:
        raise SyncMergeError(
            f"session {session_id}: merging its conflict copies failed ({exc}); every line is still in the log "
            "or in a copy left in place: fix the cause and run `sessions doctor` again"
        ) from exc
    events = outcome.merged.events
    return CopiesMerged(
        session_id=session_id,
        copies=copies,
        added_events=len({r.id for r in events} - before),
        heads=build_tree(outcome.merged.chain).heads,
        written=outcome.written and not dry_run,
        trashed=outcome.trashed,
        kept=outcome.kept,
    )


def merge_conflict_copies(service: LocalSessionService, *, dry_run: bool) -> list[CopiesMerged]:
    """Merge every session's conflict copies into its log, then move the copies to ``ROOT/trash/``.

    Each merged log is written atomically before any of its copies is moved,
    so a crash at any point loses nothing; running it again finishes the job.
    A session that cannot be merged now (busy, or a sync tool kept replacing
    it) is reported with ``error`` set, and its copies stay in place.

    :param dry_run: report what would be merged, change nothing.
    """
    results: list[CopiesMerged] = []
    for session_id, copies in sorted(service.layout.scan().copies.items()):
        try:
            result = merge_session_copies(service, session_id, dry_run=dry_run)
        except (SessionBusy, SyncMergeError, UnsafeStorePath) as exc:
            results.append(CopiesMerged(session_id, copies, 0, [], False, [], copies, error=str(exc)))
            continue
        if result is not None:
            results.append(result)
    return results


def copy_findings(copies: Sequence[Path]) -> list[Finding]:
    """A ``conflict_copy`` finding for each copy beside a log: not damage, since readers merge it."""
    return [
        Finding(
            0,
            "conflict_copy",
            f"{copy.name} is a sync tool's conflict copy of this log: it loads as part of the session; "
            "`sessions doctor` merges it in for good",
        )
        for copy in copies
    ]


def _event_ids(log_path: Path) -> set[str]:
    try:
        return {r.id for r in read_log(log_path).records if r.k == KIND_EVENT}
    except FileNotFoundError:
        return set()


TEMPLATES: Final = {".gitattributes": "gitattributes", ".gitignore": "gitignore", ".stignore": "stignore"}
"""Sync templates: the name in a store root, and the file under ``sessions/templates/``."""


def sync_template(name: str) -> str:
    """The text of one template of :data:`TEMPLATES` (by its name in a store, e.g. ``".stignore"``).

    :raises KeyError: for a name that is not a template.
    """
    return resources.files("sessions").joinpath("templates", TEMPLATES[name]).read_text(encoding="utf-8")


def write_sync_templates(root: Path, *, overwrite: bool = False) -> list[Path]:
    """Write the sync templates into the store at ``root``: ``.gitattributes``, ``.gitignore``, ``.stignore``.

    A file that exists already is left alone unless ``overwrite`` (it may hold
    the user's own rules); see ``docs/SYNC.md`` for what each needs.

    :returns: the files written.
    """
    written = []
    for name in TEMPLATES:
        path = root / name
        if path.exists() and not overwrite:
            continue
        atomic_write(path, sync_template(name).encode())
        written.append(path)
    return written
