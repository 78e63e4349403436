"""``sessions import --from`` and ``sessions export --format claude-code|codex|pi`` through the real console script."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import SessionsCLI
from tests.importers.conftest import SESSIONS, SUBAGENTS, TRANSCRIPTS, transcript

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


def test_the_wrong_tool_is_refused_and_the_right_one_then_imports(sessions_cli: SessionsCLI) -> None:
    claude = transcript(SESSIONS["claude-code"][2])
    wrong = sessions_cli("import", "--from", "codex", claude)
    assert wrong.returncode == 2
    assert f"{claude} looks like a claude-code session file" in wrong.stderr
    assert "--from claude-code" in wrong.stderr and "--from auto" in wrong.stderr
    assert "0 imported" in wrong.stderr and json.loads(sessions_cli("list", "--json").stdout or "[]") == []
    right = sessions_cli("import", "--from", "claude-code", claude)
    assert right.returncode == 0 and "1 imported" in right.stderr, right.stderr
    listed = json.loads(sessions_cli("list", "--json").stdout)
    assert [s["labels"]["source"] for s in listed] == ["claude-code"]


def _torn_main_with_a_new_subagent(tmp_path: Path) -> Path:
    """The session with sub-agents copied, one more sub-agent added, and a torn last line on the main file."""
    folder = tmp_path / "cc"
    folder.mkdir()
    main = folder / f"{MAIN}.jsonl"
    main.write_bytes(transcript(SESSIONS["claude-code"][0]).read_bytes())
    agents = folder / MAIN / "subagents"
    agents.mkdir(parents=True)
    for name in SUBAGENTS:
        agents.joinpath(Path(name).name).write_bytes(transcript(name).read_bytes())
    return main


def _add_subagent_and_tear(main: Path) -> None:
    agents = main.with_suffix("") / "subagents"
    head = agents.joinpath("agent-a2898e3.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)[:3]
    agents.joinpath("agent-zzz9.jsonl").write_text("".join(head).replace("a2898e3", "zzz9"), encoding="utf-8")
    with open(main, "a", encoding="utf-8") as f:
        f.write('{"type":"progress","data":{"agentId":"zzz9","x":"tor')


def test_a_new_subagent_of_a_session_still_being_written_imports(sessions_cli: SessionsCLI, tmp_path: Path) -> None:
    main = _torn_main_with_a_new_subagent(tmp_path)
    assert sessions_cli("import", "--from", "claude-code", main).returncode == 0
    _add_subagent_and_tear(main)
    again = sessions_cli("import", "--from", "claude-code", main)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    assert f"imported {MAIN}.agent-zzz9 (3 lines)" in again.stdout
    assert "1 imported, 3 already in the store, 0 refused" in again.stderr


def test_a_torn_last_line_says_what_to_do(sessions_cli: SessionsCLI, tmp_path: Path) -> None:
    torn = tmp_path / "torn.jsonl"
    lines = transcript(SESSIONS["codex"][0]).read_text(encoding="utf-8").splitlines(keepends=True)
    torn.write_text("".join(lines[:3]) + '{"timestamp":"2025', encoding="utf-8")
    done = sessions_cli("import", "--from", "codex", torn)
    assert done.returncode == 2
    assert f"{torn}, line 4: not valid JSON" in done.stderr
    assert "the tool may still be writing it: import it once the session has ended, or remove the torn last line" in (
        done.stderr
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes("".join(lines[:2]).encode() + b'{"type":"x","t":"\xff"}\n' + lines[2].encode())
    done = sessions_cli("import", "--from", "codex", bad)
    assert done.returncode == 2 and f"{bad}, line 3: not UTF-8 text" in done.stderr, done.stderr
    assert json.loads(sessions_cli("list", "--json").stdout or "[]") == []


def test_an_empty_file_is_not_a_session_yet(sessions_cli: SessionsCLI, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n  \n")
    done = sessions_cli("import", "--from", "claude-code", empty, blank)
    assert done.returncode == 2
    assert f"{empty} is empty: not a session file yet" in done.stderr
    assert f"{blank} is empty: not a session file yet" in done.stderr
    assert "0 imported, 0 already in the store, 2 refused" in done.stderr
    assert json.loads(sessions_cli("list", "--json").stdout or "[]") == []


def test_a_tools_file_without_from_suggests_it(sessions_cli: SessionsCLI) -> None:
    codex = transcript(SESSIONS["codex"][0])
    done = sessions_cli("import", codex)
    assert done.returncode == 2
    assert "looks like a codex session file" in done.stderr
    assert "--from codex" in done.stderr and "--from auto" in done.stderr


def test_imported_sessions_have_titles(sessions_cli: SessionsCLI) -> None:
    transcript(SESSIONS["codex"][0])
    assert sessions_cli("import", "--from", "auto", TRANSCRIPTS).returncode == 0
    listed = json.loads(sessions_cli("list", "--json").stdout)
    assert all(s["title"] for s in listed), [s["id"] for s in listed if not s["title"]]
    assert all("\n" not in s["title"] and len(s["title"]) <= 100 for s in listed)
    codex = next(s for s in listed if s["labels"]["source"] == "codex")
    assert codex["title"].startswith("finish up the users work")
    table = sessions_cli("list")
    assert "(no message yet)" not in table.stdout
