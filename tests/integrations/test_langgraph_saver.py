"""JsonlCheckpointSaver's own promises: tail reads, writes that arrive early, concurrent writers, JSON values."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph.checkpoint.base", reason="needs the langgraph extra (make test installs it)")

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint, CheckpointMetadata, empty_checkpoint

from sessions import LocalSessionService, StoredEvent
from sessions.integrations.langgraph import JsonlCheckpointSaver


class CountingStore(LocalSessionService):
    """The real store, noting the windows read (``last``) so a test can see how far back a call went."""

    windows: list[int | None]

    def load_events(
        self, session_id: str, *, last: int | None = None, from_compaction: bool = False
    ) -> list[StoredEvent]:
        self.windows.append(last)
        return super().load_events(session_id, last=last, from_compaction=from_compaction)


def config(thread_id: str, checkpoint_id: str | None = None, ns: str = "") -> RunnableConfig:
    conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


def checkpoint(**values: Any) -> Checkpoint:
    made = empty_checkpoint()
    made["channel_values"] = dict(values)
    made["channel_versions"] = dict.fromkeys(values, 1)
    return made


def metadata(step: int, **extra: Any) -> CheckpointMetadata:
    return {"source": "loop", "step": step, "parents": {}, **extra}  # type: ignore[typeddict-item]


def put_chain(saver: JsonlCheckpointSaver, thread_id: str, count: int) -> list[RunnableConfig]:
    """``count`` checkpoints, each the child of the one before, each with one task's writes."""
    stored: list[RunnableConfig] = []
    parent = config(thread_id)
    for step in range(count):
        cp = checkpoint(n=step)
        parent = saver.put(parent, cp, metadata(step), {"n": 1})
        saver.put_writes(parent, [("n", step + 1)], task_id=f"task-{step}")
        stored.append(parent)
    return stored


def test_the_latest_checkpoint_is_read_from_the_end(tmp_path: Path) -> None:
    store = CountingStore.open(tmp_path)
    store.windows = []
    with JsonlCheckpointSaver(store) as saver:
        stored = put_chain(saver, "long", 300)
        store.windows.clear()
        latest = saver.get_tuple(config("long"))
        assert latest is not None and latest.checkpoint["channel_values"] == {"n": 299}
        assert latest.pending_writes == [("task-299", "n", 300)]
        assert store.windows == [16]  # one read of the last 16 events, of 600

        store.windows.clear()
        assert [t.metadata["step"] for t in saver.list(config("long"), limit=3)] == [299, 298, 297]
        assert store.windows == [16]

        store.windows.clear()
        assert [t.metadata["step"] for t in saver.list(stored[-2])] == [298]  # one id: found, then no further
        assert store.windows == [16]

        # The first checkpoint is at the start: windows grow fourfold until they reach it.
        store.windows.clear()
        first = saver.get_tuple(stored[0])
        assert first is not None and first.checkpoint["channel_values"] == {"n": 0}
        assert first.parent_config is None
        assert store.windows == [16, 64, 256, 1024]


def test_writes_that_reach_the_log_before_their_checkpoint(tmp_path: Path) -> None:
    # LangGraph puts writes in the background: a task's writes may be appended before the
    # checkpoint they belong to.
    with JsonlCheckpointSaver(tmp_path) as saver:
        first = saver.put(config("t"), checkpoint(), metadata(0), {})
        second = checkpoint()
        saver.put_writes(config("t", second["id"]), [("early", 1)], task_id="a")
        stored = saver.put(first, second, metadata(1), {})
        saver.put_writes(stored, [("late", 2)], task_id="b")
        for found in (saver.get_tuple(config("t")), next(iter(saver.list(config("t"))))):
            assert found is not None
            assert found.pending_writes == [("a", "early", 1), ("b", "late", 2)]


def test_writes_from_many_threads_at_once(tmp_path: Path) -> None:
    with JsonlCheckpointSaver(tmp_path) as saver:
        stored = saver.put(config("busy"), checkpoint(), metadata(0), {})
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda n: saver.put_writes(stored, [("ch", n)], task_id=f"task-{n:03}"), range(64)))
        found = saver.get_tuple(stored)
        assert found is not None and found.pending_writes is not None
        assert [w[2] for w in found.pending_writes] == list(range(64))
        assert saver.store.verify("busy").ok


WRITER = """
import sys
from sessions.integrations.langgraph import JsonlCheckpointSaver
root, checkpoint_id, name = sys.argv[1:]
config = {"configurable": {"thread_id": "shared", "checkpoint_ns": "", "checkpoint_id": checkpoint_id}}
with JsonlCheckpointSaver(root, durability="flush") as saver:
    for n in range(40):
        saver.put_writes(config, [("ch", n)], task_id=f"{name}-{n:02}")
"""


def test_two_processes_writing_one_thread(tmp_path: Path) -> None:
    with JsonlCheckpointSaver(tmp_path) as saver:
        stored = saver.put(config("shared"), checkpoint(), metadata(0), {})
        checkpoint_id = stored["configurable"]["checkpoint_id"]
        writers = [
            subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), checkpoint_id, name]) for name in "ab"
        ]
        assert [w.wait(timeout=120) for w in writers] == [0, 0]
        found = saver.get_tuple(stored)
        assert found is not None and found.pending_writes is not None
        assert len(found.pending_writes) == 80
        assert saver.store.verify("shared").ok


class JsonSerde:
    """A serializer that writes JSON, as an application may choose: the log then shows the values as they are."""

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        return "json", json.dumps(obj).encode()

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        return json.loads(data[1])


def test_json_values_are_stored_as_json(tmp_path: Path) -> None:
    with JsonlCheckpointSaver(tmp_path, serde=JsonSerde()) as saver:
        stored = saver.put(config("j"), checkpoint(answer={"text": "hi", "n": 1.5}), metadata(0), {})
        saver.put_writes(stored, [("answer", [1, 2])], task_id="t")
        found = saver.get_tuple(config("j"))
        assert found is not None
        assert found.checkpoint["channel_values"] == {"answer": {"text": "hi", "n": 1.5}}
        assert found.pending_writes == [("t", "answer", [1, 2])]
    lines = [json.loads(line) for line in (tmp_path / "sessions" / "j.jsonl").read_text().splitlines()]
    put, written = (line["data"] for line in lines if line["k"] == "event")
    assert put["channel_values"]["answer"] == {"type": "json", "json": {"text": "hi", "n": 1.5}}
    assert written["writes"][0] == {"idx": 0, "channel": "answer", "value": {"type": "json", "json": [1, 2]}}


def test_metadata_that_is_not_json_writes_nothing(tmp_path: Path) -> None:
    with JsonlCheckpointSaver(tmp_path) as saver:
        with pytest.raises(TypeError, match="metadata must be JSON"):
            saver.put(config("m"), checkpoint(), metadata(0, odd=object()), {})
        assert saver.get_tuple(config("m")) is None
        assert saver.store.session_ids() == []


def test_copy_into_a_thread_skips_what_it_holds(tmp_path: Path) -> None:
    with JsonlCheckpointSaver(tmp_path) as saver:
        put_chain(saver, "src", 3)
        saver.copy_thread("src", "dst")
        saver.copy_thread("src", "dst")
        copied = list(saver.list(config("dst")))
        assert [t.metadata["step"] for t in copied] == [2, 1, 0]
        assert [t.pending_writes for t in copied] == [[("task-2", "n", 3)], [("task-1", "n", 2)], [("task-0", "n", 1)]]


def test_delete_for_runs_rewrites_only_the_threads_holding_them(tmp_path: Path) -> None:
    with JsonlCheckpointSaver(tmp_path) as saver:
        run = str(uuid.uuid4())
        first = saver.put(config("r"), checkpoint(), metadata(0, run_id=run), {})
        saver.put(first, checkpoint(), metadata(1, run_id="other"), {})
        saver.put(config("untouched"), checkpoint(), metadata(0, run_id="other"), {})
        saver.delete_for_runs([run])
        assert [t.metadata["step"] for t in saver.list(config("r"))] == [1]
        assert [t.id for t in saver.store.list_trash()] == ["r"]


def test_prune_refuses_an_unknown_strategy(tmp_path: Path) -> None:
    with JsonlCheckpointSaver(tmp_path) as saver, pytest.raises(ValueError, match="unknown prune strategy"):
        saver.prune(["t"], strategy="keep_some")


def test_channel_versions_increase_and_differ_between_branches(tmp_path: Path) -> None:
    with JsonlCheckpointSaver(tmp_path) as saver:
        first = saver.get_next_version(None, None)
        second = saver.get_next_version(first, None)
        assert first < second
        assert second.split(".")[0] == f"{2:032}"
        assert saver.get_next_version(first, None) != second  # a second branch from the same version
