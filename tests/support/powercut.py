"""Power cuts, simulated: record the library's file-system calls, then rebuild what a cut could leave on disk.

Every call of the library that changes the disk goes through :mod:`eventlog._fs`.
:class:`Recorder` replaces those names with wrappers that make the real call and
then note its effect, as an :class:`Op`, on a model of the file tree below one
base folder (:class:`Tree`): which inode each name points to, each file's
bytes, and what the last ``fsync`` of each file and each folder made durable.
The model works on inodes, not names, so a file renamed or unlinked while open
is followed, as the kernel follows it.

Replaying a prefix of the trace (the ops before the point where power is cut)
gives the tree as the running program saw it then; a power cut leaves less.
How much less depends on the file system. Two models, after the ALICE
(Pillai et al., OSDI 2014) and CrashMonkey (Mohan et al., OSDI 2018) studies:

``posix`` (strict)
    A file holds what its last ``fsync`` made durable, nothing written after it.
    A name (a created file, a rename, an unlink, a made folder) survives only
    once the folder holding it was fsynced after the change; until then the
    folder's entries are those of its last ``fsync``.
``ext4`` (``data=ordered``)
    Metadata (creates, renames, unlinks, truncations, folders) persists in
    order: a cut keeps every metadata change before it, none reordered. Data
    written since a file's last ``fsync`` may be lost. Three variants:
    ``kept`` (all of it reached the disk: what a killed process leaves),
    ``lost`` (none of it did) and ``torn`` (the last unsynced write of each file
    reached the disk only in part, as a cut in the middle of writeback leaves it).

:func:`crash_states` gives one :class:`CrashState` per prefix, model and variant;
:func:`materialize` writes one out as real files, for the library to open.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from eventlog import _fs

__all__ = [
    "MODELS",
    "CrashState",
    "Op",
    "Recorder",
    "RecorderError",
    "Snapshot",
    "Tree",
    "crash_states",
    "materialize",
]

OpKind = Literal["create", "mkdir", "write", "truncate", "fsync", "rename", "unlink", "chmod"]
MODELS: Final = ("posix", "ext4")
VARIANTS: Final = {"posix": ("synced",), "ext4": ("kept", "lost", "torn")}
ROOT: Final = 0
"""The model inode of the base folder (it exists, empty, before recording starts)."""

_PATCHED: Final = ("open", "write", "fsync", "replace", "ftruncate", "fchmod", "unlink", "mkdir")
_FLAG_NAMES: Final = ("O_CREAT", "O_EXCL", "O_TRUNC", "O_APPEND", "O_DIRECTORY")
_WRITABLE: Final = os.O_WRONLY | os.O_RDWR


class RecorderError(AssertionError):
    """The model and the disk disagree: a change was made without going through ``eventlog._fs``."""


@dataclass(frozen=True)
class Op:
    """One recorded change. Paths are relative to the base folder; ``ino`` is a model inode number."""

    kind: OpKind
    path: str = ""
    """create, mkdir, unlink: the name; rename: the source."""
    target: str = ""
    """rename: the destination."""
    ino: int = -1
    """create, mkdir: the new inode; write, truncate, fsync, chmod: the inode of the descriptor."""
    offset: int = 0
    data: bytes = b""
    size: int = 0
    """truncate: the new size."""
    real_ino: int = 0
    """create, mkdir: the inode number the real file system gave."""
    flags: str = ""
    """create: the open flags, for reading a trace."""

    def __str__(self) -> str:
        if self.kind in ("create", "mkdir"):
            return f"{self.kind} {self.path} [{self.flags}] -> #{self.ino}"
        if self.kind == "write":
            return f"write #{self.ino} @{self.offset} {len(self.data)} bytes {self.data[:40]!r}"
        if self.kind == "truncate":
            return f"truncate #{self.ino} to {self.size}"
        if self.kind == "rename":
            return f"rename {self.path} -> {self.target}"
        if self.kind == "unlink":
            return f"unlink {self.path}"
        return f"{self.kind} #{self.ino}"


# -- the model of a file tree ----------------------------------------------------------------


@dataclass
class _Inode:
    is_dir: bool
    real_ino: int
    data: bytearray = field(default_factory=bytearray)
    synced: bytes = b""
    """A file's bytes at its last fsync."""
    unsynced: list[tuple[int, int, bytes]] = field(default_factory=list)
    """A file's changes since its last fsync: (-1, size, b"") for a truncation, (offset, 0, data) for a write."""
    entries: dict[str, int] = field(default_factory=dict)
    """A folder's names, as the running program sees them."""
    synced_entries: dict[str, int] = field(default_factory=dict)
    """A folder's names at its last fsync."""


@dataclass(frozen=True)
class Snapshot:
    """A whole file tree: every file's bytes and every folder, by path relative to the base."""

    files: tuple[tuple[str, bytes], ...]
    dirs: tuple[str, ...]

    def file(self, path: str) -> bytes | None:
        for name, data in self.files:
            if name == path:
                return data
        return None

    def under(self, folder: str) -> dict[str, bytes]:
        """The files directly or indirectly inside ``folder``."""
        prefix = folder.rstrip("/") + "/"
        return {name: data for name, data in self.files if name.startswith(prefix)}


@dataclass(frozen=True)
class CrashState:
    """What a power cut after the first ``cut`` ops could leave, under one model."""

    model: str
    variant: str
    cut: int
    snapshot: Snapshot
    real_inos: tuple[tuple[str, int], ...]
    """The inode number each path had when recorded (power loss keeps inode numbers; a rebuild cannot)."""


class Tree:
    """A model of the files below the base folder, changed by :meth:`apply`."""

    def __init__(self, root_real_ino: int = 0) -> None:
        self.inodes: dict[int, _Inode] = {ROOT: _Inode(is_dir=True, real_ino=root_real_ino)}

    def new_ino(self) -> int:
        return max(self.inodes) + 1

    def lookup(self, path: str) -> int | None:
        """The inode at ``path`` as the running program sees it, or None."""
        ino = ROOT
        for part in _parts(path):
            inode = self.inodes[ino]
            if not inode.is_dir or part not in inode.entries:
                return None
            ino = inode.entries[part]
        return ino

    def _parent(self, path: str) -> tuple[_Inode, str]:
        parts = _parts(path)
        folder = self.lookup("/".join(parts[:-1]))
        if folder is None or not self.inodes[folder].is_dir:
            raise RecorderError(f"{path}: its folder is not in the model")
        return self.inodes[folder], parts[-1]

    def apply(self, op: Op) -> None:
        if op.kind in ("create", "mkdir"):
            folder, name = self._parent(op.path)
            self.inodes[op.ino] = _Inode(is_dir=op.kind == "mkdir", real_ino=op.real_ino)
            folder.entries[name] = op.ino
        elif op.kind == "write":
            inode = self.inodes[op.ino]
            _put(inode.data, op.offset, op.data)
            inode.unsynced.append((op.offset, 0, op.data))
        elif op.kind == "truncate":
            inode = self.inodes[op.ino]
            _resize(inode.data, op.size)
            inode.unsynced.append((-1, op.size, b""))
        elif op.kind == "fsync":
            inode = self.inodes[op.ino]
            if inode.is_dir:
                inode.synced_entries = dict(inode.entries)
            else:
                inode.synced, inode.unsynced = bytes(inode.data), []
        elif op.kind == "rename":
            source, old = self._parent(op.path)
            dest, new = self._parent(op.target)
            dest.entries[new] = source.entries.pop(old)
        elif op.kind == "unlink":
            folder, name = self._parent(op.path)
            del folder.entries[name]
        # chmod: permissions are not modelled (every file is rebuilt 0600, every folder 0700)

    # -- what survives ----------------------------------------------------------------------

    def live(self) -> Snapshot:
        """The tree as the running program sees it (no power cut)."""
        return self._walk(lambda inode: inode.entries, lambda inode: bytes(inode.data))[0]

    def crash(self, model: str, variant: str, rng: random.Random) -> tuple[Snapshot, tuple[tuple[str, int], ...]]:
        """The tree a power cut now could leave under ``model`` / ``variant``, and each path's recorded inode."""
        if model == "posix":
            return self._walk(lambda inode: inode.synced_entries, lambda inode: inode.synced)
        return self._walk(lambda inode: inode.entries, lambda inode: _ext4_data(inode, variant, rng))

    def _walk(
        self, entries: Callable[[_Inode], dict[str, int]], content: Callable[[_Inode], bytes]
    ) -> tuple[Snapshot, tuple[tuple[str, int], ...]]:
        files: list[tuple[str, bytes]] = []
        dirs: list[str] = []
        inos: list[tuple[str, int]] = []
        stack: list[tuple[str, int]] = [("", ROOT)]
        while stack:
            path, ino = stack.pop()
            inode = self.inodes[ino]
            if path:
                inos.append((path, inode.real_ino))
            if inode.is_dir:
                if path:
                    dirs.append(path)
                stack.extend((f"{path}/{name}" if path else name, child) for name, child in entries(inode).items())
            else:
                files.append((path, content(inode)))
        return Snapshot(tuple(sorted(files)), tuple(sorted(dirs))), tuple(sorted(inos))


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def _put(data: bytearray, offset: int, chunk: bytes) -> None:
    if offset > len(data):
        data.extend(bytes(offset - len(data)))
    data[offset : offset + len(chunk)] = chunk


def _resize(data: bytearray, size: int) -> None:
    if size < len(data):
        del data[size:]
    else:
        data.extend(bytes(size - len(data)))


def _ext4_data(inode: _Inode, variant: str, rng: random.Random) -> bytes:
    """A file's bytes after a cut under ext4: truncations are metadata and kept; unsynced writes as ``variant`` says."""
    if variant == "kept" or not inode.unsynced:
        return bytes(inode.data)
    data = bytearray(inode.synced)
    writes = [i for i, (offset, _, _) in enumerate(inode.unsynced) if offset >= 0]
    last = writes[-1] if writes else -1
    for i, (offset, size, chunk) in enumerate(inode.unsynced):
        if offset < 0:
            _resize(data, size)
        elif variant == "torn" and i == last:
            if len(chunk) > 1:
                _put(data, offset, chunk[: rng.randrange(1, len(chunk))])
        elif variant == "torn":
            _put(data, offset, chunk)
    return bytes(data)


def crash_states(ops: list[Op], *, seed: int = 0) -> Iterator[CrashState]:
    """Every state a power cut could leave, at every point of the trace (before each op, and after the last)."""
    tree = Tree()
    for cut in range(len(ops) + 1):
        rng = random.Random(seed * 1_000_003 + cut)
        for model in MODELS:
            for variant in VARIANTS[model]:
                snapshot, inos = tree.crash(model, variant, rng)
                yield CrashState(model, variant, cut, snapshot, inos)
        if cut < len(ops):
            tree.apply(ops[cut])


def materialize(state: CrashState, dest: Path) -> dict[int, int]:
    """Write ``state`` out below ``dest`` (an empty folder standing for the base).

    :returns: each recorded inode number that one path in the state had, mapped to the rebuilt file's
        (a real power cut keeps inode numbers; callers translate what they saved, such as the index).
    """
    for folder in state.snapshot.dirs:
        os.mkdir(dest / folder, 0o700)
    for name, data in state.snapshot.files:
        fd = os.open(dest / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
    owners: dict[int, list[str]] = {}
    for path, real_ino in state.real_inos:
        owners.setdefault(real_ino, []).append(path)
    return {ino: os.lstat(dest / paths[0]).st_ino for ino, paths in owners.items() if len(paths) == 1 and ino}


# -- the recorder ------------------------------------------------------------------------------


@dataclass
class _Handle:
    ino: int
    """Model inode, or -1 for a file outside the base (not recorded)."""
    real_ino: int
    real_dev: int


class Recorder:
    """Records the effect of every ``eventlog._fs`` call below ``base`` while :meth:`installed`.

    ``base`` must be empty when recording starts. Calls on paths outside it are
    made but not recorded. A descriptor not opened through ``eventlog._fs``, or a
    path the model does not know, raises :class:`RecorderError`: the library
    changed the disk behind the recorder's back.
    """

    def __init__(self, base: Path) -> None:
        self.base = os.path.abspath(base)
        if os.listdir(self.base):
            raise RecorderError(f"{self.base} is not empty")
        self.tree = Tree(os.lstat(self.base).st_ino)
        self.ops: list[Op] = []
        self._fds: dict[int, _Handle] = {}
        self._real: dict[str, Callable[..., Any]] = {}

    @contextlib.contextmanager
    def installed(self) -> Iterator[Recorder]:
        self._real = {name: getattr(_fs, name) for name in _PATCHED}
        wrappers: dict[str, Callable[..., Any]] = {
            "open": self._open,
            "write": self._write,
            "fsync": self._fsync,
            "replace": self._replace,
            "ftruncate": self._ftruncate,
            "fchmod": self._fchmod,
            "unlink": self._unlink,
            "mkdir": self._mkdir,
        }
        try:
            for name, wrapper in wrappers.items():
                setattr(_fs, name, wrapper)
            yield self
        finally:
            for name, real in self._real.items():
                setattr(_fs, name, real)

    def check_against_disk(self) -> None:
        """The model's live tree is the real one: nothing changed the disk without going through ``eventlog._fs``."""
        files: list[tuple[str, bytes]] = []
        dirs: list[str] = []
        for folder, subdirs, names in os.walk(self.base):
            rel = os.path.relpath(folder, self.base)
            prefix = "" if rel == "." else rel + "/"
            dirs.extend(prefix + name for name in subdirs)
            for name in names:
                with open(os.path.join(folder, name), "rb") as f:
                    files.append((prefix + name, f.read()))
        disk = Snapshot(tuple(sorted(files)), tuple(sorted(dirs)))
        model = self.tree.live()
        if disk != model:
            only_disk = sorted(set(disk.files) - set(model.files)) + sorted(set(disk.dirs) - set(model.dirs))
            only_model = sorted(set(model.files) - set(disk.files)) + sorted(set(model.dirs) - set(disk.dirs))
            raise RecorderError(
                f"the model and the disk differ: on disk only {_names(only_disk)}, "
                f"in the model only {_names(only_model)}"
            )

    # -- helpers ---------------------------------------------------------------------------------

    def _rel(self, path: str | os.PathLike[str]) -> str | None:
        full = os.path.abspath(os.fspath(path))
        if full == self.base:
            return ""
        if full.startswith(self.base + os.sep):
            return full[len(self.base) + 1 :].replace(os.sep, "/")
        return None

    def _record(self, op: Op) -> None:
        self.tree.apply(op)
        self.ops.append(op)

    def _handle(self, fd: int) -> _Handle:
        handle = self._fds.get(fd)
        if handle is None:
            raise RecorderError(f"descriptor {fd} was not opened through eventlog._fs")
        st = os.fstat(fd)
        if (st.st_ino, st.st_dev) != (handle.real_ino, handle.real_dev):
            raise RecorderError(f"descriptor {fd} names another file than the one opened through eventlog._fs")
        return handle

    # -- the wrappers ------------------------------------------------------------------------------

    def _open(self, path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if dir_fd is not None:
            raise RecorderError("open with dir_fd is not modelled")
        rel = self._rel(path)
        known = None if rel is None else self.tree.lookup(rel)
        fd: int = self._real["open"](path, flags, mode)
        st = os.fstat(fd)
        if rel is None:
            self._fds[fd] = _Handle(-1, st.st_ino, st.st_dev)
            return fd
        if known is None:
            if not flags & os.O_CREAT:
                os.close(fd)
                raise RecorderError(f"{rel} exists on disk but not in the model")
            known = self.tree.new_ino()
            self._record(Op("create", path=rel, ino=known, real_ino=st.st_ino, flags=_flag_names(flags)))
        elif flags & os.O_TRUNC and flags & _WRITABLE:
            self._record(Op("truncate", ino=known, size=0))
        self._fds[fd] = _Handle(known, st.st_ino, st.st_dev)
        return fd

    def _write(self, fd: int, data: bytes | memoryview) -> int:
        handle = self._handle(fd)
        written: int = self._real["write"](fd, data)
        if handle.ino >= 0:
            end = os.lseek(fd, 0, os.SEEK_CUR)  # for O_APPEND too: where the bytes went
            self._record(Op("write", ino=handle.ino, offset=end - written, data=bytes(data[:written])))
        return written

    def _fsync(self, fd: int) -> None:
        handle = self._handle(fd)
        self._real["fsync"](fd)
        if handle.ino >= 0:
            self._record(Op("fsync", ino=handle.ino))

    def _ftruncate(self, fd: int, size: int) -> None:
        handle = self._handle(fd)
        self._real["ftruncate"](fd, size)
        if handle.ino >= 0:
            self._record(Op("truncate", ino=handle.ino, size=size))

    def _fchmod(self, fd: int, mode: int) -> None:
        handle = self._handle(fd)
        self._real["fchmod"](fd, mode)
        if handle.ino >= 0:
            self._record(Op("chmod", ino=handle.ino))

    def _replace(self, src: Any, dst: Any) -> None:
        rel_src, rel_dst = self._rel(src), self._rel(dst)
        if (rel_src is None) != (rel_dst is None):
            raise RecorderError(f"rename across the base folder is not modelled: {src} -> {dst}")
        self._real["replace"](src, dst)
        if rel_src is not None and rel_dst is not None:
            self._record(Op("rename", path=rel_src, target=rel_dst))

    def _unlink(self, path: Any) -> None:
        rel = self._rel(path)
        self._real["unlink"](path)
        if rel is not None:
            self._record(Op("unlink", path=rel))

    def _mkdir(self, path: Any, mode: int = 0o777) -> None:
        rel = self._rel(path)
        self._real["mkdir"](path, mode)
        if rel is not None:
            self._record(
                Op("mkdir", path=rel, ino=self.tree.new_ino(), real_ino=os.lstat(path).st_ino, flags=f"{mode:#o}")
            )


def _flag_names(flags: int) -> str:
    return "|".join(name for name in _FLAG_NAMES if flags & getattr(os, name, 0))


def _names(items: list[Any]) -> str:
    shown = [item[0] if isinstance(item, tuple) else item for item in items[:5]]
    return ", ".join(map(str, shown)) or "nothing"
