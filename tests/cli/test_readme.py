"""The README's examples work as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent.parent / "README.md"


def code_block(heading: str, language: str) -> str:
    """The first ``language`` code block after the ``## heading`` line of the README."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1]
    match = re.search(rf"^```{language}\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)
    assert match is not None, f"no {language} block under '## {heading}' in {README}"
    return match.group(1)


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``code`` run by this interpreter in a new process, warnings as errors, temporary files under ``cwd``."""
    return subprocess.run(
        [sys.executable, "-W", "error", "-"],
        check=False,
        input=code,
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "TMPDIR": str(cwd)},
        timeout=120,
    )


PYTHON_BLOCKS = re.findall(r"^```python\n(.*?)^```$", README.read_text(encoding="utf-8"), re.DOTALL | re.MULTILINE)


def test_library_example_runs(tmp_path: Path) -> None:
    code = code_block("Using the library", "python")
    assert len(code.strip().splitlines()) <= 21  # the README promises a short example
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}: 3 events\n", result.stdout)


@pytest.mark.parametrize("code", PYTHON_BLOCKS, ids=[f"block{n}" for n in range(len(PYTHON_BLOCKS))])
def test_every_python_block_runs(tmp_path: Path, code: str) -> None:
    assert len(PYTHON_BLOCKS) >= 3
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr


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


def python_blocks() -> list[str]:
    """Every python code block of the README."""
    text = README.read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```$", text, re.DOTALL | re.MULTILINE)


def test_readme_examples_pass_mypy_strict(tmp_path: Path) -> None:
    blocks = python_blocks()
    assert blocks
    for n, code in enumerate(blocks):
        (tmp_path / f"readme_example_{n}.py").write_text(code, encoding="utf-8")
    # Run from outside the checkout, as a project that depends on the installed library would.
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *sorted(p.name for p in tmp_path.glob("*.py"))],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_editable_install_is_visible_to_mypy_in_a_depending_project(tmp_path: Path) -> None:
    """make installs the checkout in compat mode: a plain path in a .pth file, which mypy follows."""
    (tmp_path / "app.py").write_text(
        "from sessions import LocalSessionService, StoredSession\n\n"
        "def latest(store: LocalSessionService) -> StoredSession | None:\n"
        "    return store.find_resumable('/p', None, max_age_secs=float('inf'))\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "app.py"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_make_demo_installs_only_what_the_demo_needs() -> None:
    makefile = (README.parent / "Makefile").read_text(encoding="utf-8")
    demo = re.search(r"^demo: (\S+)", makefile, re.MULTILINE)
    assert demo is not None
    recipe = re.search(rf"^{re.escape(demo.group(1))}:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert recipe is not None
    assert "-e .\n" in recipe.group(1) and "[" not in recipe.group(1)  # no extras: no test or lint tools
    assert "editable_mode=compat" in makefile and "PYTHONWARNINGS=ignore" in makefile
    test = re.search(r"^test: .*\n\t(.*)\n", makefile, re.MULTILINE)
    assert test is not None and "-n auto" in test.group(1) and "not stress" in test.group(1)
