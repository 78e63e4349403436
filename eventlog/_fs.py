"""The file-system calls the log layer makes, gathered in one place.

Every write-side call goes through these names so fault-injection tests can
replace them (``monkeypatch.setattr(eventlog._fs, "write", ...)``) and prove
that a failed write, sync, rename or open loses nothing acknowledged.
``fchmod`` and ``unlink`` are here too: they run while a file is created and
while a failed one is cleaned up.
"""

from __future__ import annotations

import os

open = os.open  # noqa: A001 - deliberately mirrors os.open
write = os.write
fsync = os.fsync
replace = os.replace
ftruncate = os.ftruncate
fchmod = os.fchmod
unlink = os.unlink
