"""The real transcripts, read in place from ``../shared/fixtures/transcripts/`` beside the checkout, and one
store holding all of them imported (shared by the tests that only read it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessions import LocalSessionService, importers
from sessions.importers import ImportResult

CHECKOUT = Path(__file__).resolve().parents[2]
TRANSCRIPTS = CHECKOUT.parent / "shared" / "fixtures" / "transcripts"

SESSIONS = {
    "claude-code": [
        "claude-code/4d5611e5-241a-462a-8d15-5122611a9569.jsonl",
        "claude-code/ae4a77f8-aedd-4bc1-888f-c94edc91af04.jsonl",
        "claude-code/fa812bfe-b295-4cca-9c2f-fdf01028cb46.jsonl",
    ],
    "codex": ["codex/rollout-2025-11-17T15-30-28-019a93b9-f380-7600-98ff-940e6b99603c.jsonl"],
    "pi": ["pi/before-compaction.jsonl", "pi/kvsankar-session-01-v3.jsonl"],
}
SUBAGENTS = [
    "claude-code/4d5611e5-241a-462a-8d15-5122611a9569/subagents/agent-a2898e3.jsonl",
    "claude-code/4d5611e5-241a-462a-8d15-5122611a9569/subagents/agent-acompact-e1f845.jsonl",
]
FILES = [(fmt, name) for fmt, names in SESSIONS.items() for name in names] + [("claude-code", n) for n in SUBAGENTS]
"""Every transcript, with its tool. Named here, not globbed, so that a missing folder fails each test instead of
leaving nothing to run; ``test_every_transcript_is_tested`` checks that the list covers the folder."""


def transcript(name: str) -> Path:
    """The path of a transcript; fails (never skips) when it is not there."""
    path = TRANSCRIPTS / name
    if not path.is_file():
        pytest.fail(
            f"transcript {path} is missing: the tests read the real files in ../shared/fixtures/transcripts/ "
            "beside the checkout (see SOURCES.md there); put that folder back, never a copy in the repository"
        )
    return path


class Imported:
    """A store holding every transcript, and what importing each file returned (by file name)."""

    def __init__(self, root: Path) -> None:
        self.store = LocalSessionService.open(root, durability="flush", event_types=importers.EVENT_TYPES)
        self.results: dict[str, ImportResult] = {}
        for fmt, names in SESSIONS.items():
            for name in names:
                for result in importers.import_file(self.store, fmt, transcript(name)):
                    self.results[str(Path(result.path).resolve().relative_to(TRANSCRIPTS))] = result

    def session_id(self, name: str) -> str:
        return self.results[name].session_id


@pytest.fixture(scope="session")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Imported:
    """Every transcript imported once into one store; tests that write make their own."""
    return Imported(tmp_path_factory.mktemp("imported"))
