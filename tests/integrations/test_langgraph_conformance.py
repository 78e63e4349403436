"""LangGraph's checkpointer conformance suite (``langgraph-checkpoint-conformance``) against JsonlCheckpointSaver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest.importorskip("langgraph.checkpoint.conformance", reason="needs the adapters-test extra (make test installs it)")

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES

from sessions.integrations.langgraph import JsonlCheckpointSaver

EVERY_CAPABILITY = sorted(c.value for c in ALL_CAPABILITIES)


def test_the_suite_knows_the_capabilities_we_claim() -> None:
    # A newer suite adding a capability should make us look, not pass by skipping it.
    assert EVERY_CAPABILITY == [
        "copy_thread",
        "delete_for_runs",
        "delete_thread",
        "get_tuple",
        "list",
        "prune",
        "put",
        "put_writes",
    ]


@pytest.mark.parametrize("capability", EVERY_CAPABILITY)
def test_conformance(tmp_path: Path, capability: str) -> None:
    """Every capability is detected and every one of its tests passes; none is skipped."""
    folders = iter(range(1_000))

    @checkpointer_test(name="JsonlCheckpointSaver")
    async def saver() -> AsyncIterator[JsonlCheckpointSaver]:
        # A fresh store per suite, as the suite asks, each closed at the end.
        with JsonlCheckpointSaver(tmp_path / f"store-{next(folders)}", durability="flush") as fresh:
            yield fresh

    report = asyncio.run(validate(saver, capabilities={capability}))
    result = report.results[capability]
    assert result.detected, f"{capability} is not detected as implemented"
    assert result.tests_skipped == 0
    assert result.tests_passed > 0
    assert result.passed is True, "\n".join(result.failures)
