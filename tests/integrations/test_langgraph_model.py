"""JsonlCheckpointSaver against LangGraph's InMemorySaver: the same puts, writes and deletes read back the same.

Hypothesis draws sequences of operations (forks from earlier checkpoints, two namespaces, repeated and
special-channel writes, checkpoints put again under their id); every read of ours, from the saver that
wrote and from a fresh one, must equal the in-memory saver's.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph.checkpoint.memory", reason="needs the langgraph extra (make test installs it)")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple, empty_checkpoint
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.types import ERROR, INTERRUPT

from sessions.integrations.langgraph import JsonlCheckpointSaver

THREADS = ("t1", "t2")
NAMESPACES = ("", "child:1")
CHANNELS = ("a", "b", ERROR, INTERRUPT)

puts = st.tuples(
    st.just("put"),
    st.sampled_from(THREADS),
    st.sampled_from(NAMESPACES),
    st.integers(0, 5),  # which earlier checkpoint of the thread and namespace to fork from (beyond: the latest)
    st.dictionaries(st.sampled_from(("x", "y")), st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5), max_size=2),
    st.sampled_from(("input", "loop", "update")),
)
writes = st.tuples(
    st.just("writes"),
    st.sampled_from(THREADS),
    st.sampled_from(NAMESPACES),
    st.integers(0, 5),  # which checkpoint the writes are for
    st.sampled_from(("task-1", "task-2")),
    st.lists(st.tuples(st.sampled_from(CHANNELS), st.integers(0, 9)), min_size=1, max_size=3),
)
deletes = st.tuples(st.just("delete"), st.sampled_from(THREADS))
agains = st.tuples(
    st.just("again"),  # an earlier checkpoint put again under its id, with other values: it replaces the first
    st.sampled_from(THREADS),
    st.sampled_from(NAMESPACES),
    st.integers(0, 5),
    st.dictionaries(st.sampled_from(("x", "y")), st.integers(0, 9), max_size=2),
)


def run(saver: BaseCheckpointSaver[Any], operations: list[tuple[Any, ...]], ids: list[str]) -> None:
    stored: dict[tuple[str, str], list[RunnableConfig]] = {}
    put_under: dict[str, RunnableConfig] = {}  # checkpoint id -> the config it was put with
    made = iter(ids)
    version = itertools.count(1)
    for op in operations:
        if op[0] == "put":
            _, thread, ns, pick, values, source = op
            chain = stored.setdefault((thread, ns), [])
            config: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ns}}
            if chain:
                config["configurable"]["checkpoint_id"] = chain[min(pick, len(chain) - 1)]["configurable"][
                    "checkpoint_id"
                ]
            checkpoint = empty_checkpoint()
            checkpoint["id"] = next(made)
            checkpoint["channel_values"] = dict(values)
            versions = {channel: next(version) for channel in values}
            checkpoint["channel_versions"] = dict(versions)
            metadata = {"source": source, "step": len(chain), "parents": {}}
            put_under[checkpoint["id"]] = config
            chain.append(saver.put(config, checkpoint, metadata, versions))  # type: ignore[arg-type]
        elif op[0] == "again":
            _, thread, ns, pick, values = op
            chain = stored.get((thread, ns), [])
            if chain:
                checkpoint_id = chain[min(pick, len(chain) - 1)]["configurable"]["checkpoint_id"]
                checkpoint = empty_checkpoint()
                checkpoint["id"] = checkpoint_id
                checkpoint["channel_values"] = dict(values)
                versions = {channel: next(version) for channel in values}
                checkpoint["channel_versions"] = dict(versions)
                metadata = {"source": "update", "step": -1, "parents": {}}
                saver.put(put_under[checkpoint_id], checkpoint, metadata, versions)  # type: ignore[arg-type]
        elif op[0] == "writes":
            _, thread, ns, pick, task, pairs = op
            chain = stored.get((thread, ns), [])
            if chain:
                saver.put_writes(chain[min(pick, len(chain) - 1)], pairs, task, task_path=f"path-{task}")
        else:
            saver.delete_thread(op[1])
            for ns in NAMESPACES:
                stored.pop((op[1], ns), None)


def view(found: CheckpointTuple | None) -> Any:
    if found is None:
        return None
    return (
        found.config,
        found.checkpoint["id"],
        found.checkpoint["channel_values"],
        found.checkpoint["channel_versions"],
        found.metadata,
        found.parent_config,
        found.pending_writes,
    )


def reads(saver: BaseCheckpointSaver[Any], ids: list[str]) -> list[Any]:
    seen: list[Any] = []
    for thread, ns in itertools.product(THREADS, NAMESPACES):
        config: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ns}}
        seen.append(view(saver.get_tuple(config)))
        seen.append([view(t) for t in saver.list(config)])
        seen.append([view(t) for t in saver.list(config, limit=2, filter={"source": "loop"})])
        for checkpoint_id in ids[::3]:
            one: RunnableConfig = {"configurable": {**config["configurable"], "checkpoint_id": checkpoint_id}}
            seen.append(view(saver.get_tuple(one)))
            seen.append([view(t) for t in saver.list(config, before=one)])
    return seen


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(puts, puts, writes, writes, deletes, agains), max_size=25))
def test_reads_match_the_in_memory_saver(operations: list[tuple[Any, ...]]) -> None:
    # Checkpoint ids grow in the order of the puts, as LangGraph's do.
    ids = [empty_checkpoint()["id"] for _ in operations]
    model = InMemorySaver()
    run(model, operations, ids)
    expected = reads(model, ids)
    with tempfile.TemporaryDirectory() as folder:
        with JsonlCheckpointSaver(Path(folder), durability="flush") as saver:
            run(saver, operations, ids)
            assert reads(saver, ids) == expected
        with JsonlCheckpointSaver(Path(folder)) as fresh:
            assert reads(fresh, ids) == expected
