"""``sessions import --from`` and ``sessions export --format claude-code|codex|pi`` through the real console script."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import SessionsCLI
from tests.importers.conftest import SESSIONS, TRANSCRIPTS, transcript

MAIN = "4d5611e5-241a-462a-8d15-5122611a9569"


def test_import_a_folder_then_again_then_export(sessions_cli: SessionsCLI, tmp_path: Path) -> None:
    transcript(SESSIONS["claude-code"][0])
    done = sessions_cli("--store", sessions_cli.store, "import", "--from", "claude-code", TRANSCRIPTS / "claude-code")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("imported ") == 5 and f"imported {MAIN}.agent-a2898e3 (144 lines)" in done.stdout
    assert "5 imported, 0 already in the store, 0 refused" in done.stderr

    again = sessions_cli("import", "--from", "claude-code", TRANSCRIPTS / "claude-code")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("skipped ") == 5 and "0 imported, 5 already in the store" in again.stderr

    out = tmp_path / "back.jsonl"
    exported = sessions_cli("export", MAIN, "--format", "claude-code", "-o", out)
    assert exported.returncode == 0, exported.stderr
    source = transcript(SESSIONS["claude-code"][0]).read_text(encoding="utf-8")
    assert [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()] == [
        json.loads(x) for x in source.splitlines()
    ]
    assert sessions_cli("export", MAIN, "--format", "claude-code", "-o", out).returncode == 2  # exists: no --force

    listed = json.loads(sessions_cli("list", "--json").stdout)
    assert {s["labels"]["source"] for s in listed} == {"claude-code"}
    verified = sessions_cli("verify", "--all")
    assert verified.returncode == 0 and "unknown" not in verified.stdout


def test_import_several_paths_of_pi_and_codex_and_export_to_stdout(sessions_cli: SessionsCLI) -> None:
    pi = [transcript(name) for name in SESSIONS["pi"]]
    codex = transcript(SESSIONS["codex"][0])
    done = sessions_cli("import", "--from", "pi", pi[0], TRANSCRIPTS / "pi")  # a file and its folder: once each
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("imported ") == 2
    assert sessions_cli("import", "--from", "codex", codex).returncode == 0
    shown = sessions_cli("show", "019a93b9")
    assert "finish up the users work" in shown.stdout and "thinking" in shown.stdout
    exported = sessions_cli("export", "019a93b9", "--format", "codex")
    assert exported.returncode == 0
    source = codex.read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in exported.stdout.splitlines()] == [json.loads(x) for x in source]
    refused = sessions_cli("export", "019a93b9", "--format", "pi")
    assert refused.returncode == 2 and "not a line imported from pi" in refused.stderr


def test_what_is_not_a_session_file_is_refused(sessions_cli: SessionsCLI, tmp_path: Path) -> None:
    bad = tmp_path / "notes.jsonl"
    bad.write_text('{"type": "user"}\nnot json\n')
    done = sessions_cli("import", "--from", "pi", bad)
    assert done.returncode == 2
    assert f"{bad}, line 2: not a JSON object" in done.stderr and "0 imported" in done.stderr
    missing = sessions_cli("import", "--from", "codex", tmp_path / "nowhere")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    several = sessions_cli("import", bad, bad)
    assert several.returncode == 2 and "--from" in several.stderr


def test_import_auto_tells_the_tools_apart(sessions_cli: SessionsCLI) -> None:
    transcript(SESSIONS["codex"][0])
    done = sessions_cli("import", "--from", "auto", TRANSCRIPTS)
    assert done.returncode == 0, done.stderr
    assert "8 imported, 0 already in the store, 0 refused" in done.stderr
    listed = json.loads(sessions_cli("list", "--json").stdout)
    sources = sorted(s["labels"]["source"] for s in listed)
    assert sources == ["claude-code"] * 5 + ["codex"] + ["pi"] * 2
