"""Two clones of a store in real git, diverged, merged with the union driver from the template."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import msgspec
import pytest

from eventlog import verify_log
from sessions import LocalSessionService
from sessions.conflicts import merge_conflict_copies, write_sync_templates
from tests.support.sync_helpers import (
    all_event_ids,
    contents,
    continue_session,
    new_session,
    open_store,
    raw_event_ids,
    view,
)

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(repo.parent),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    result = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def _commit_all(repo: Path, message: str) -> None:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)


def _two_clones(tmp_path: Path, *, templates: bool = True) -> tuple[Path, Path, str]:
    a_root, b_root = tmp_path / "a", tmp_path / "b"
    a = open_store(a_root)
    if templates:
        write_sync_templates(a_root)
    sid = new_session(a, "/proj", "one", "two")
    a.close()  # writes index.jsonl, which the ignore template keeps out of git
    _git(a_root, "init", "-q", "-b", "main")
    _commit_all(a_root, "first")
    subprocess.run(["git", "clone", "-q", str(a_root), str(b_root)], check=True, capture_output=True, timeout=60)
    return a_root, b_root, sid


def _diverge(a_root: Path, b_root: Path, sid: str) -> tuple[str, str]:
    with open_store(a_root) as a, open_store(b_root) as b:
        continue_session(a, sid, "a3", "a4")
        only_a = new_session(a, "/proj", "a only")
        a.set_metadata(sid, "k", "from a")
        continue_session(b, sid, "b3")
        only_b = new_session(b, "/other", "b only")
        b.set_metadata(sid, "k", "from b")
        b.archive(only_b)
    _commit_all(a_root, "a diverges")
    _commit_all(b_root, "b diverges")
    return only_a, only_b


def _pull(repo: Path, other: Path) -> subprocess.CompletedProcess[str]:
    _git(repo, "fetch", "-q", str(other), "main")
    return _git(repo, "merge", "--no-edit", "FETCH_HEAD", check=False)


def test_ignore_template_keeps_machine_local_files_out_of_git(tmp_path: Path) -> None:
    a_root, _, sid = _two_clones(tmp_path)
    tracked = set(_git(a_root, "ls-files").stdout.split())
    assert tracked == {".gitattributes", ".gitignore", ".stignore", f"sessions/{sid}.jsonl"}
    assert (a_root / "index.jsonl").exists() and (a_root / "locks").is_dir()
    assert _git(a_root, "status", "--porcelain").stdout == ""


def test_union_merge_of_diverged_clones_converges_with_nothing_lost(tmp_path: Path) -> None:
    a_root, b_root, sid = _two_clones(tmp_path)
    only_a, only_b = _diverge(a_root, b_root, sid)
    ids_a = raw_event_ids(*(a_root / "sessions").glob("*.jsonl"))
    ids_b = raw_event_ids(*(b_root / "sessions").glob("*.jsonl"))

    merged_into_a = _pull(a_root, b_root)
    assert merged_into_a.returncode == 0, merged_into_a.stdout + merged_into_a.stderr
    merged_into_b = _pull(b_root, a_root)
    assert merged_into_b.returncode == 0, merged_into_b.stdout + merged_into_b.stderr

    with open_store(a_root) as a, open_store(b_root) as b:
        assert view(a) == view(b)
        assert {s.id for s in a.list_sessions(include_archived=True)} == {sid, only_a, only_b}
        everything = ids_a | ids_b
        assert sorted(everything) == sorted(i for s in (sid, only_a, only_b) for i in all_event_ids(a, s))
        for store, root in ((a, a_root), (b, b_root)):
            # Every event once on disk too: the union driver adds no duplicates here.
            log = root / "sessions" / f"{sid}.jsonl"
            report = verify_log(log)
            assert report.ok and report.forked and not [f for f in report.findings if f.kind == "duplicate"]
            assert len(store.load_tree(sid).heads) == 2
        assert contents(a, sid)[-2:] == ["a4", "reply to a4"]  # the deeper branch is active on both
        assert a.get_metadata(sid, "k") == "from b"
        archived = a.get_session(only_b)
        assert archived is not None and archived.archived_at is not None

        # Both sides keep working after the merge: appends continue the active head.
        continue_session(a, sid, "a5")
        continue_session(b, sid, "b5")
    _commit_all(a_root, "a after merge")
    _commit_all(b_root, "b after merge")
    assert _pull(a_root, b_root).returncode == 0
    assert _pull(b_root, a_root).returncode == 0
    with open_store(a_root) as a, open_store(b_root) as b:
        assert view(a) == view(b)
        tree = a.load_tree(sid)
        assert len(tree.heads) == 3  # a5 and b5 both continued the same head: a new fork, nothing lost
        said = [msgspec.json.decode(e.event_data)["content"] for e in tree.events]
        assert sorted(said) == sorted(set(said)), "an event appears twice"
        assert {"a5", "b5", "a4", "b3", "one"} <= set(said)


def test_without_the_union_driver_git_reports_a_conflict(tmp_path: Path) -> None:
    """Why the .gitattributes template matters: git's default merge cannot join two appends."""
    a_root, b_root, sid = _two_clones(tmp_path, templates=False)
    _diverge(a_root, b_root, sid)
    result = _pull(a_root, b_root)
    assert result.returncode != 0
    assert "CONFLICT" in result.stdout


def test_conflict_copies_are_not_needed_after_git_but_doctor_merge_is_harmless(tmp_path: Path) -> None:
    a_root, b_root, sid = _two_clones(tmp_path)
    _diverge(a_root, b_root, sid)
    assert _pull(a_root, b_root).returncode == 0
    a = LocalSessionService.open(a_root)
    before = a.log_path(sid).read_bytes()
    assert merge_conflict_copies(a, dry_run=False) == []
    assert a.log_path(sid).read_bytes() == before
