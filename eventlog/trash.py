"""The one trash writer: bytes the store stops holding are kept here first.

Torn tails cut off a log, conflict copies merged into one, and deleted
sessions all land in ``trash/``. Names never collide (exclusive create, a
counter on a clash), every byte is written (looped writes), and with
``durable`` the copy and its directory entry are synced before the caller goes
on to cut or remove the original.
"""

from __future__ import annotations

import os
from pathlib import Path

from eventlog import _fs
from eventlog.durability import FILE_MODE, ensure_private_dir, sync_dir, sync_file

__all__ = ["move_to_trash", "save_to_trash"]


def save_to_trash(trash_dir: Path, name: str, data: bytes, *, durable: bool = True) -> Path:
    """Write ``data`` to a new file in ``trash_dir`` named ``name`` (or ``name.N``); where it went.

    :raises OSError: if the trash refused the write; nothing of the caller's was changed yet.
    """
    ensure_private_dir(trash_dir, durable=durable)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    n = 0
    while True:
        path = trash_dir / (name if n == 0 else f"{name}.{n}")
        try:
            fd = _fs.open(path, flags, FILE_MODE)
            break
        except FileExistsError:
            n += 1
    try:
        _fs.write_all(fd, data)
        if durable:
            sync_file(fd)
    except BaseException:
        os.close(fd)
        _fs.unlink(path)
        raise
    os.close(fd)
    if durable:
        sync_dir(trash_dir)
    return path


def move_to_trash(source: Path, trash_dir: Path, *, name: str | None = None, durable: bool = True) -> Path:
    """Move ``source`` into ``trash_dir`` (renamed to ``name`` or ``name.N`` if given); where it went.

    Both folders' entries are synced with ``durable``, the trash first, so at no
    point is the file in neither.
    """
    ensure_private_dir(trash_dir, durable=durable)
    base = name or source.name
    n = 0
    while True:
        dest = trash_dir / (base if n == 0 else f"{base}.{n}")
        if not os.path.lexists(dest):
            break
        n += 1
    _fs.replace(source, dest)
    if durable:
        sync_dir(trash_dir)
        sync_dir(source.parent)
    return dest
