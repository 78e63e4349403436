"""JsonlCheckpointSaver's own promises: tail reads, writes that arrive early, concurrent writers, JSON values,
labelled thread sessions (and unlabelled ones from before), prunes that race writers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph.checkpoint.base", reason="needs the langgraph extra (make test installs it)")

import msgspec
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    empty_checkpoint,
)
from langgraph.checkpoint.memory import InMemorySaver

from sessions import LocalSessionService, SessionConflict, StoredEvent
from sessions.integrations._langgraph_events import mapped_session_id
from sessions.integrations.langgraph import JsonlCheckpointSaver
from sessions.rewrite import REPLACED


class CountingStore(LocalSessionService):
    """The real store, noting the windows read (``last``) so a test can see how far back a call went,
    and the sessions whose metadata was read."""

    windows: list[int | None]
    metadata_read: list[str]

    def load_events(
        self, session_id: str, *, last: int | None = None, from_compaction: bool = False
    ) -> list[StoredEvent]:
        self.windows.append(last)
        return super().load_events(session_id, last=last, from_compaction=from_compaction)

    def get_metadata(self, session_id: str, key: str) -> Any:
        self.metadata_read.append(session_id)
        return super().get_metadata(session_id, key)

    def metadata(self, session_id: str) -> dict[str, Any]:
        self.metadata_read.append(session_id)
        return super().metadata(session_id)


def counting_store(root: Path) -> CountingStore:
    store = CountingStore.open(root)
    store.windows, store.metadata_read = [], []
    return store


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
    store = counting_store(tmp_path)
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
from sessions.integrations._langgraph_events import mapped_session_id
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
        saver.put(config("only-the-run"), checkpoint(), metadata(0, run_id=run), {})
        saver.delete_for_runs([run])
        assert [t.metadata["step"] for t in saver.list(config("r"))] == [1]
        assert [t.metadata["step"] for t in saver.list(config("untouched"))] == [0]
        # A thread left with no checkpoint stays, empty, rather than being deleted under a racing writer.
        assert list(saver.list(config("only-the-run"))) == []
        assert saver.store.load_events("only-the-run") == []
        assert sorted(p.name for p in (tmp_path / "trash" / REPLACED).iterdir()) == ["only-the-run.jsonl", "r.jsonl"]
        assert saver.store.list_trash() == []  # nothing deleted
        saver.put(config("only-the-run"), checkpoint(), metadata(5), {})  # and it carries on
        assert [t.metadata["step"] for t in saver.list(config("only-the-run"))] == [5]


def test_prune_keeps_the_sessions_metadata_and_labels(tmp_path: Path) -> None:
    with JsonlCheckpointSaver(tmp_path) as saver:
        put_chain(saver, "kept", 3)
        saver.store.set_metadata("kept", "owner", {"team": "support", "tier": 2})
        saver.prune(["kept"])
        assert [t.metadata["step"] for t in saver.list(config("kept"))] == [2]
        assert saver.store.metadata("kept") == {"langgraph.thread_id": "kept", "owner": {"team": "support", "tier": 2}}
        stored = saver.store.get_session("kept")
        assert stored is not None
        assert stored.labels == {"framework": "langgraph", "langgraph.thread_id": "kept"}


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


def test_threads_are_listed_from_their_labels_without_reading_metadata(tmp_path: Path) -> None:
    with JsonlCheckpointSaver(tmp_path) as saver:
        put_chain(saver, "a", 2)
        put_chain(saver, "b / odd id", 1)
        # The application's own session, labelled: never taken for a thread, whatever its metadata says.
        saver.store.create_session("app", "/p", None, labels={"app": "chat"}, metadata={"langgraph.thread_id": "a"})
        assert len(saver.store.list_sessions(labels={"framework": "langgraph"})) == 2
    store = counting_store(tmp_path)
    with JsonlCheckpointSaver(store) as saver:  # a fresh saver: it knows no thread yet
        assert saver.threads.thread_ids() == ["b / odd id", "a"]  # most recently updated first
        assert sorted({t.config["configurable"]["thread_id"] for t in saver.list(None)}) == ["a", "b / odd id"]
        assert saver.get_tuple(config("a")) is not None
        run = str(uuid.uuid4())
        saver.put(config("a"), checkpoint(), metadata(9, run_id=run), {})
        saver.delete_for_runs([run])
        assert [t.metadata["step"] for t in saver.list(config("a"))] == [1, 0]
        assert store.metadata_read == []
        assert store.load_events("app") == []


def legacy_thread(store: LocalSessionService, scratch: Path, thread_id: str, session_id: str) -> None:
    """A thread session as the saver wrote it before labels: the same events, the thread id in metadata only."""
    with JsonlCheckpointSaver(scratch) as earlier:
        put_chain(earlier, thread_id, 3)
        events = [msgspec.structs.replace(e, session_id=session_id) for e in earlier.threads.events(thread_id)]
    store.create_session(session_id, None, None, events=events, metadata={"langgraph.thread_id": thread_id})


def test_unlabelled_thread_sessions_from_before_labels_are_still_found(tmp_path: Path) -> None:
    store = counting_store(tmp_path / "store")
    odd = "old / odd id"
    odd_session = mapped_session_id(odd)
    legacy_thread(store, tmp_path / "scratch-1", "old", "old")
    legacy_thread(store, tmp_path / "scratch-2", odd, odd_session)
    store.create_session("plain", "/p", None)  # the application's own, unlabelled: read, and passed by
    with JsonlCheckpointSaver(store) as saver:
        saver.put(config("new"), checkpoint(), metadata(0), {})
        store.metadata_read.clear()
        assert sorted(saver.threads.thread_ids()) == ["new", "old", odd]
        # Only the sessions with no labels had their metadata read.
        assert sorted(store.metadata_read) == sorted(["old", odd_session, "plain"])
    with JsonlCheckpointSaver(store) as saver:
        found = saver.get_tuple(config(odd))
        assert found is not None and found.metadata["step"] == 2
        assert sorted({t.config["configurable"]["thread_id"] for t in saver.list(None)}) == ["new", "old", odd]
        run = str(uuid.uuid4())
        latest = saver.put(config("old"), checkpoint(), metadata(3, run_id=run), {})
        saver.put(latest, checkpoint(), metadata(4), {})
        saver.delete_for_runs([run])
        assert [t.metadata["step"] for t in saver.list(config("old"))] == [4, 2, 1, 0]
        saver.prune(["old", odd])
        assert sorted((t.config["configurable"]["thread_id"], t.metadata["step"]) for t in saver.list(None)) == [
            ("new", 0),
            ("old", 4),
            (odd, 2),
        ]
        assert saver.store.get_metadata(odd_session, "langgraph.thread_id") == odd
    assert store.load_events("plain") == []


RACING_WRITER = """
import sys
from sessions import SessionConflict
from sessions.integrations._langgraph_events import mapped_session_id
from sessions.integrations.langgraph import JsonlCheckpointSaver
from langgraph.checkpoint.base import empty_checkpoint
root, count = sys.argv[1], int(sys.argv[2])
# A put waits for the lock while a prune holds it (a longer wait than the default: the test prunes in a loop).
with JsonlCheckpointSaver(root, durability="flush", lock_timeout=30) as saver:
    print("ready", flush=True)
    for n in range(count):
        # Each checkpoint in a namespace of its own: the latest of its namespace, so no prune may drop it.
        config = {"configurable": {"thread_id": "raced", "checkpoint_ns": f"w{n}"}}
        while True:
            try:
                stored = saver.put(config, empty_checkpoint(), {"source": "loop", "step": n, "parents": {}}, {})
            except SessionConflict:
                print("conflict", flush=True)
                continue
            break
        print("put", stored["configurable"]["checkpoint_ns"], stored["configurable"]["checkpoint_id"], flush=True)
"""


class ConflictCountingStore(LocalSessionService):
    """The real store, counting the appends it refused because the head had moved."""

    conflicts = 0

    def append_events(self, session_id: str, events: Sequence[StoredEvent]) -> None:
        try:
            super().append_events(session_id, events)
        except SessionConflict:
            self.conflicts += 1
            raise


def test_a_writer_whose_head_a_prune_dropped_retries_after_the_new_head(tmp_path: Path) -> None:
    other = ConflictCountingStore.open(tmp_path)  # the writer's own store, as another process has
    with JsonlCheckpointSaver(tmp_path) as pruner, JsonlCheckpointSaver(other) as writer:
        first = writer.put(config("t"), checkpoint(), metadata(0), {})
        latest = pruner.put(first, checkpoint(), metadata(1), {})
        writer.put_writes(first, [("n", 1)], task_id="late")  # the writer's head: writes of the first checkpoint
        pruner.prune(["t"])  # drops the first checkpoint and its writes, the writer's head with them
        conflicts = other.conflicts
        writer.put(latest, checkpoint(), metadata(2), {})
        assert other.conflicts == conflicts + 1  # refused once, then appended after the new head
        assert [t.metadata["step"] for t in pruner.list(config("t"))] == [2, 1]
        assert pruner.store.verify("t").ok


class SlowReadStore(LocalSessionService):
    """The real store, taking its time over each whole log it reads, as over a long log: a prune's read."""

    def load_events(
        self, session_id: str, *, last: int | None = None, from_compaction: bool = False
    ) -> list[StoredEvent]:
        events = super().load_events(session_id, last=last, from_compaction=from_compaction)
        if last is None:
            time.sleep(0.01)
        return events


def test_a_checkpoint_put_while_a_prune_runs_is_never_lost(tmp_path: Path) -> None:
    # Another process puts checkpoints into the thread while this one keeps pruning it. Each put that
    # returned must be in the final log: appended to the new log, or retried after SessionConflict.
    # (Writing the thread anew, as the saver used to, lost the puts that fell between its read and
    # its delete, or collided with the thread's re-creation.)
    with JsonlCheckpointSaver(SlowReadStore.open(tmp_path, durability="flush")) as saver:
        parent = saver.put(config("raced"), checkpoint(), metadata(0), {})
        command = [sys.executable, "-c", RACING_WRITER, str(tmp_path), "60"]
        prunes = 0
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as writer:
            assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
            # Until the writer is done, and at least three prunes (a fast writer may finish within two).
            while writer.poll() is None or prunes < 3:
                parent = saver.put(parent, checkpoint(), metadata(prunes + 1), {})  # something for the prune to drop
                saver.prune(["raced"])
                prunes += 1
                time.sleep(0.005)  # polled locks are not fair: leave the writer a turn
            out, _ = writer.communicate()
        assert writer.returncode == 0
        acknowledged = {tuple(line.split()[1:]) for line in out.splitlines() if line.startswith("put ")}
        assert len(acknowledged) == 60
        stored = {
            (t.config["configurable"]["checkpoint_ns"], t.config["configurable"]["checkpoint_id"])
            for t in saver.list({"configurable": {"thread_id": "raced"}})  # every namespace
        }
        assert acknowledged <= stored, f"lost: {sorted(acknowledged - stored)}"
        assert [t.metadata["step"] for t in saver.list(config("raced", ns=""))] == [prunes]  # the root's latest only
        assert saver.store.verify("raced").ok
        assert prunes >= 3 and len(list((tmp_path / "trash" / REPLACED).iterdir())) == prunes


def seen(found: CheckpointTuple | None) -> Any:
    """What a read returns, as plain values to compare with the in-memory saver's."""
    if found is None:
        return None
    return (
        found.config,
        found.checkpoint["id"],
        found.checkpoint["channel_values"],
        found.metadata,
        found.parent_config,
        found.pending_writes,
    )


def test_a_checkpoint_put_again_replaces_the_first_copy_as_in_memory(tmp_path: Path) -> None:
    # LangGraph's own savers key a checkpoint by (thread, ns, checkpoint_id): a second put of the same
    # id overwrites the first, and the writes of that id, made before or after, all stay with it.
    first, later = checkpoint(n=1), checkpoint(n=3)
    later["channel_versions"] = {"n": 3}  # the in-memory saver keeps a value per channel version
    again: Checkpoint = {**first, "channel_values": {"n": 2}, "channel_versions": {"n": 2}}
    model = InMemorySaver()
    with JsonlCheckpointSaver(tmp_path) as saver:
        for each in (model, saver):
            stored = each.put(config("t"), first, metadata(0), {"n": 1})
            each.put_writes(stored, [("n", 10)], task_id="before-the-copy")
            each.put(stored, later, metadata(1), {"n": 3})
            each.put(config("t"), again, metadata(0, again=True), {"n": 2})
            each.put_writes(stored, [("n", 20)], task_id="after-the-copy")
        for each in (model, saver):
            assert [t.checkpoint["id"] for t in each.list(config("t"))] == [later["id"], first["id"]]
        assert [seen(t) for t in saver.list(config("t"))] == [seen(t) for t in model.list(config("t"))]
        assert seen(saver.get_tuple(config("t", first["id"]))) == seen(model.get_tuple(config("t", first["id"])))
        assert seen(saver.get_tuple(config("t"))) == seen(model.get_tuple(config("t")))


def test_a_copy_into_a_thread_with_newer_checkpoints_keeps_them_latest(tmp_path: Path) -> None:
    # The source's checkpoints are older (by id) than the target's: the target's newest stays the
    # latest, the list comes newest first by id, and a prune keeps the newest, as LangGraph's savers do.
    ids = [empty_checkpoint()["id"] for _ in range(4)]
    model = InMemorySaver()  # the target as it should read after the copy: all four put into it

    def put_two(each: BaseCheckpointSaver[Any], thread_id: str, first: int) -> None:
        parent = config(thread_id)
        for n in (first, first + 1):
            made = checkpoint(n=n)
            made["id"], made["channel_versions"] = ids[n], {"n": n}
            parent = each.put(parent, made, metadata(n), {"n": n})
            each.put_writes(parent, [("n", n)], task_id=f"task-{n}")

    with JsonlCheckpointSaver(tmp_path) as saver:
        put_two(saver, "src", 0)
        put_two(saver, "dst", 2)
        saver.copy_thread("src", "dst")
        put_two(model, "dst", 0)
        put_two(model, "dst", 2)
        assert [seen(t) for t in saver.list(config("dst"))] == [seen(t) for t in model.list(config("dst"))]
        assert seen(saver.get_tuple(config("dst"))) == seen(model.get_tuple(config("dst")))
        assert [t.metadata["step"] for t in saver.list(config("dst"))] == [3, 2, 1, 0]
        assert saver.store.verify("dst").ok
        saver.prune(["dst"])
        assert [seen(t) for t in saver.list(config("dst"))] == [seen(model.get_tuple(config("dst")))]


def test_a_thread_deleted_elsewhere_and_its_id_reused_is_left_to_its_new_owner(tmp_path: Path) -> None:
    # Another process deletes the thread, then the application creates a session of its own under
    # the same id: this saver, which knew the thread there, must not write into that session.
    with JsonlCheckpointSaver(tmp_path) as saver, JsonlCheckpointSaver(tmp_path) as other:
        saver.put(config("t"), checkpoint(), metadata(0), {})
        other.delete_thread("t")
        other.store.create_session("t", "/p", None, labels={"app": "mine"})
        latest = saver.put(config("t"), checkpoint(), metadata(1), {})
        assert other.store.load_events("t") == []
        app = other.store.get_session("t")
        assert app is not None and app.labels == {"app": "mine"}
        # The thread goes on at its uuid5 id, as a thread whose id is taken does from its first put.
        assert saver.threads.session_id("t") == mapped_session_id("t")
        for each in (saver, other):
            found = each.get_tuple(config("t"))
            assert found is not None and found.config == latest and found.metadata["step"] == 1

        # Nor may it delete or prune that session, for a thread it remembered there.
        saver.put(config("u"), checkpoint(), metadata(0), {})
        other.delete_thread("u")
        other.store.create_session("u", "/p", None, labels={"app": "mine"})
        saver.prune(["u"])
        saver.delete_thread("u")
        assert other.store.get_session("u") is not None
