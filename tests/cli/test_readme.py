"""The README's examples work as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent.parent / "README.md"


def code_block(heading: str, language: str) -> str:
    """The first ``language`` code block after the ``## heading`` line of the README."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1]
    match = re.search(rf"^```{language}\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)
    assert match is not None, f"no {language} block under '## {heading}' in {README}"
    return match.group(1)


def test_library_example_runs(tmp_path: Path) -> None:
    code = code_block("Using the library", "python")
    assert len(code.strip().splitlines()) <= 20  # the README promises a short example
    result = subprocess.run(
        [sys.executable, "-W", "error", "-"],
        check=False,
        input=code,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}: 3 events\n", result.stdout)


def test_the_two_commands_are_the_makefile_targets() -> None:
    commands = code_block("The two commands", "sh")
    assert "make demo" in commands and "make test" in commands
    makefile = (README.parent / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo:", makefile, re.MULTILINE) and re.search(r"^test:", makefile, re.MULTILINE)
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci


def test_every_command_has_a_line_in_the_readme_table() -> None:
    from sessions.cli import ALL_COMMANDS

    section = README.read_text(encoding="utf-8").split("\n## The `sessions` command\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `sessions ")]
    for name in ALL_COMMANDS:
        assert any(f"`sessions {name}" in row or f"/ `{name} " in row for row in rows), name
