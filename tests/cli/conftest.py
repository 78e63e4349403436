"""Fixtures of the command's tests: a store on a read-only mount."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def read_only_view(folder: Path) -> Iterator[Path]:
    """``folder`` seen through a read-only bind mount, as a backup or a mounted snapshot is.

    A real mount, not a permission bit: the tests run as root, for whom ``chmod a-w`` refuses nothing.
    Skips the test where the machine does not let us mount.
    """
    if shutil.which("mount") is None:
        pytest.skip("needs mount(8) for a read-only bind mount")
    view = folder.parent / f"ro-{uuid.uuid4().hex[:8]}"
    view.mkdir()
    bind = subprocess.run(["mount", "--bind", str(folder), str(view)], capture_output=True, check=False)
    if bind.returncode != 0:
        view.rmdir()
        pytest.skip(f"cannot bind-mount here: {bind.stderr.decode().strip()}")
    try:
        ro = subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], capture_output=True, check=False)
        if ro.returncode != 0:
            pytest.skip(f"cannot make a read-only bind mount here: {ro.stderr.decode().strip()}")
        probe = view / ".write-probe"
        try:
            probe.touch()
        except OSError:
            pass
        else:
            probe.unlink()
            pytest.skip("the read-only mount accepted a write")
        yield view
    finally:
        subprocess.run(["umount", str(view)], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            view.rmdir()
