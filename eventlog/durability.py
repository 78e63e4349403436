"""Durability helpers: syncing files and directories, atomic replacement."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final, Literal

from eventlog import _fs

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "Durability",
    "atomic_write",
    "check_durability",
    "ensure_private_dir",
    "sync_dir",
    "sync_file",
]

Durability = Literal["fsync", "flush"]
"""``"fsync"``: each batch reaches stable storage before the call returns (survives
power loss). ``"flush"``: each batch reaches the OS before the call returns
(survives a crash of the process, not of the machine)."""

FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700

# macOS fsync() only hands data to the drive's cache; F_FULLFSYNC asks the drive
# to flush it, which is what "survives power loss" needs there.
_F_FULLFSYNC: Final[int | None] = getattr(fcntl, "F_FULLFSYNC", None)


def check_durability(durability: str) -> Durability:
    """Validate a durability name.

    :raises ValueError: for anything but ``"fsync"`` or ``"flush"``.
    """
    if durability == "fsync":
        return "fsync"
    if durability == "flush":
        return "flush"
    raise ValueError(f"durability must be 'fsync' or 'flush', not {durability!r}")


def sync_file(fd: int) -> None:
    """Force a file's data to stable storage."""
    if _F_FULLFSYNC is not None and sys.platform == "darwin":
        try:
            fcntl.fcntl(fd, _F_FULLFSYNC)
            return
        except OSError:
            pass  # not every file system supports it; fall back to fsync
    _fs.fsync(fd)


def sync_dir(path: Path) -> None:
    """Make a directory's entries (a created or renamed file) durable."""
    if os.name != "posix":
        return
    fd = _fs.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _fs.fsync(fd)
    finally:
        os.close(fd)


def ensure_private_dir(path: Path, *, durable: bool = False) -> None:
    """Create ``path`` (and parents) as needed; the leaf is made mode 0700.

    :param durable: sync the parent of every folder created, so the new entries
        survive a power cut (a log inside a folder whose entry was lost is lost with it).
    :raises NotADirectoryError: if ``path`` (or a parent) exists and is not a directory, or is a symlink.
    """
    missing: list[Path] = []
    probe = path
    while not os.path.lexists(probe):
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for folder in reversed(missing):
        try:
            _fs.mkdir(folder, DIR_MODE)
        except FileExistsError:
            continue  # made by another process meanwhile
        if durable:
            sync_dir(folder.parent)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"{path} is not a directory")
    # mkdir's mode is filtered by the umask; chmod is not.
    if st.st_mode & 0o777 != DIR_MODE:
        os.chmod(path, DIR_MODE)


def atomic_write(path: Path, data: bytes, *, durable: bool = True, only_if: Callable[[], bool] | None = None) -> bool:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a mix.

    Writes a temporary file beside it, syncs it, renames it over ``path`` and
    syncs the directory.

    :param only_if: checked just before the rename; if it returns False the
        temporary file is removed, ``path`` is left alone and False is returned.
    :returns: True if ``path`` was replaced.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    fd = _fs.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
    try:
        _fs.fchmod(fd, FILE_MODE)
        _fs.write_all(fd, data)
        if durable:
            sync_file(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            _fs.unlink(tmp)
        raise
    os.close(fd)
    try:
        if only_if is not None and not only_if():
            _fs.unlink(tmp)
            return False
        _fs.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            _fs.unlink(tmp)
        raise
    if durable:
        sync_dir(path.parent)
    return True
