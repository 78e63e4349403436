"""Shared fixtures. Others may append fixtures here; keep each one self-contained."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest


def sessions_executable() -> Path:
    """The installed ``sessions`` console script of the interpreter running the tests."""
    beside = Path(sys.executable).parent / ("sessions.exe" if os.name == "nt" else "sessions")
    if beside.exists():
        return beside
    found = shutil.which("sessions")
    if found is None:
        pytest.fail("the `sessions` console script is not installed; run `make test`, which installs it")
    return Path(found)


class SessionsCLI:
    """Runs the real ``sessions`` console script in a subprocess against one store."""

    def __init__(self, store: Path, cwd: Path) -> None:
        self.store = store
        self.cwd = cwd
        self.executable = sessions_executable()

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in {"COLUMNS", "LINES", "FORCE_COLOR"}}
        env.update({"SESSIONS_STORE": str(self.store), "NO_COLOR": "1", "TERM": "dumb"})
        env.update(extra or {})
        return env

    def __call__(
        self,
        *args: str | os.PathLike[str],
        stdin_text: str = "",
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.executable), *map(str, args)],
            input=stdin_text,
            capture_output=True,
            text=True,
            cwd=cwd or self.cwd,
            env=self.env(env),
            timeout=120,
            check=False,
        )


@pytest.fixture
def sessions_cli(tmp_path: Path) -> SessionsCLI:
    """The ``sessions`` command bound to a fresh store under ``tmp_path`` (created on first write)."""
    work = tmp_path / "work"
    work.mkdir()
    return SessionsCLI(tmp_path / "store", work)
