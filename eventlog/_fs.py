"""The file-system calls the log layer makes, gathered in one place.

Every call that changes the disk (and the reads that decide what to change)
goes through these names, so fault-injection tests can replace them
(``monkeypatch.setattr(eventlog._fs, "write", ...)``) and the power-loss suite
can record them, and prove that a failed or interrupted call loses nothing
acknowledged.
"""

from __future__ import annotations

import os

open = os.open  # noqa: A001 - deliberately mirrors os.open
write = os.write
pread = os.pread
read = os.read
fsync = os.fsync
replace = os.replace
ftruncate = os.ftruncate
fchmod = os.fchmod
unlink = os.unlink
mkdir = os.mkdir
link = os.link


def pread_into(fd: int, buffer: memoryview, offset: int) -> int:
    """Read into ``buffer`` from ``offset``; how many bytes came (fewer at the end of the file)."""
    return os.preadv(fd, [buffer], offset)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte of ``data``: ``write`` may write less than asked (a full disk, a size limit)."""
    view = memoryview(data)
    while view:
        view = view[write(fd, view) :]
