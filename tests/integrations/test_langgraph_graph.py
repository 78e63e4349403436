"""JsonlCheckpointSaver under real LangGraph graphs: turns, a resume in a new process, interrupts, time travel.

Run as a script, this module is the "new process": ``python test_langgraph_graph.py chat|order STORE THREAD INPUT``
runs one turn of a graph against the store and prints the thread's state as JSON.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import operator
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest

pytest.importorskip("langgraph.graph", reason="needs the langgraph extra (make test installs it)")

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, interrupt

from sessions import LocalSessionService
from sessions.integrations.langgraph import EVENT_TYPES, JsonlCheckpointSaver
from sessions.rewrite import REPLACED

HERE = Path(__file__)


class Chat(TypedDict):
    turns: Annotated[list[str], operator.add]


def reply(state: Chat) -> dict[str, Any]:
    return {"turns": [f"echo {state['turns'][-1]} ({len(state['turns'])})"]}


def chat_graph(saver: JsonlCheckpointSaver) -> CompiledStateGraph[Any, Any, Any, Any]:
    graph = StateGraph(Chat)
    graph.add_node("reply", reply)
    graph.add_edge(START, "reply")
    graph.add_edge("reply", END)
    return graph.compile(checkpointer=saver)


class Order(TypedDict, total=False):
    item: str
    approved: bool
    status: str


def ask(state: Order) -> dict[str, Any]:
    return {"approved": interrupt(f"ship {state['item']}?") == "yes"}


def ship(state: Order) -> dict[str, Any]:
    return {"status": "shipped" if state["approved"] else "cancelled"}


def order_graph(saver: JsonlCheckpointSaver) -> CompiledStateGraph[Any, Any, Any, Any]:
    graph = StateGraph(Order)
    graph.add_node("ask", ask)
    graph.add_node("ship", ship)
    graph.add_edge(START, "ask")
    graph.add_edge("ask", "ship")
    graph.add_edge("ship", END)
    return graph.compile(checkpointer=saver)


def thread(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


def in_new_process(graph: str, store: Path, thread_id: str, value: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(HERE), graph, str(store), thread_id, value],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def log_lines(store: Path, session_id: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (store / "sessions" / f"{session_id}.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_turns_resume_in_a_new_process(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with JsonlCheckpointSaver(store) as saver:
        graph = chat_graph(saver)
        graph.invoke({"turns": ["hi"]}, thread("chat-1"))
        graph.invoke({"turns": ["how are you"]}, thread("chat-1"))
        graph.invoke({"turns": ["other"]}, thread("chat-2"))

        # Another process picks the thread up from the folder alone, and carries on.
        state = in_new_process("chat", store, "chat-1", "bye")
        assert state["turns"] == ["hi", "echo hi (1)", "how are you", "echo how are you (3)", "bye", "echo bye (5)"]

        # This process sees that turn, and appends after it (its own idea of the head is stale).
        assert graph.get_state(thread("chat-1")).values["turns"][-1] == "echo bye (5)"
        graph.invoke({"turns": ["again"]}, thread("chat-1"))
        assert graph.get_state(thread("chat-1")).values["turns"][-2:] == ["again", "echo again (7)"]
        assert graph.get_state(thread("chat-2")).values["turns"] == ["other", "echo other (1)"]
        assert sorted(saver.threads.thread_ids()) == ["chat-1", "chat-2"]

    # One log per thread, named by the thread id, every line a JSON object, one straight chain.
    lines = log_lines(store, "chat-1")
    assert lines[0]["k"] == "log"
    events = [line for line in lines if line["k"] == "event"]
    assert {e["type"] for e in events} == {"langgraph_checkpoint", "langgraph_writes"}
    assert all(e["parent"] == p["id"] for p, e in itertools.pairwise(events))
    metadata = [e["data"]["metadata"] for e in events if e["type"] == "langgraph_checkpoint"]
    assert [(m["source"], m["step"]) for m in metadata[:4]] == [("input", -1), ("loop", 0), ("loop", 1), ("input", 2)]
    report = LocalSessionService.open(store, event_types=EVENT_TYPES).verify("chat-1")
    assert report.ok and report.unknown_types == {}


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_the_log_reads_with_jq(tmp_path: Path) -> None:
    with JsonlCheckpointSaver(tmp_path) as saver:
        chat_graph(saver).invoke({"turns": ["hi"]}, thread("t"))
    query = 'select(.type == "langgraph_checkpoint") | "\\(.data.metadata.step) \\(.data.metadata.source)"'
    out = subprocess.run(
        ["jq", "-r", query, str(tmp_path / "sessions" / "t.jsonl")], capture_output=True, text=True, check=True
    )
    assert out.stdout.split("\n")[:2] == ["-1 input", "0 loop"]


@pytest.mark.slow
def test_interrupt_then_resume_in_a_new_process(tmp_path: Path) -> None:
    with JsonlCheckpointSaver(tmp_path) as saver:
        graph = order_graph(saver)
        first = graph.invoke({"item": "book"}, thread("order-7"))
        assert [i.value for i in first["__interrupt__"]] == ["ship book?"]
        paused = graph.get_state(thread("order-7"))
        assert paused.next == ("ask",)
        assert [i.value for i in paused.interrupts] == ["ship book?"]

    # The answer comes in another process: the interrupt was stored as a pending write.
    assert in_new_process("order", tmp_path, "order-7", "yes") == {
        "item": "book",
        "approved": True,
        "status": "shipped",
    }

    with JsonlCheckpointSaver(tmp_path) as saver:
        done = order_graph(saver).get_state(thread("order-7"))
        assert done.next == ()
        assert done.values["status"] == "shipped"


def test_time_travel_forks_from_an_earlier_checkpoint(tmp_path: Path) -> None:
    with JsonlCheckpointSaver(tmp_path) as saver:
        graph = chat_graph(saver)
        graph.invoke({"turns": ["hi"]}, thread("tt"))
        graph.invoke({"turns": ["wrong turn"]}, thread("tt"))
        history = list(graph.get_state_history(thread("tt")))
        assert [s.metadata["step"] for s in history if s.metadata] == [4, 3, 2, 1, 0, -1]
        after_first = next(s for s in history if s.values.get("turns") == ["hi", "echo hi (1)"] and not s.next)

        graph.invoke({"turns": ["right turn"]}, after_first.config)
        assert graph.get_state(thread("tt")).values["turns"] == [
            "hi",
            "echo hi (1)",
            "right turn",
            "echo right turn (3)",
        ]
        # The abandoned branch is still there, in the history and in the log.
        assert any("wrong turn" in s.values.get("turns", []) for s in graph.get_state_history(thread("tt")))
        # A checkpoint of the abandoned branch can be read, and continued, by its id.
        wrong = next(s for s in history if s.values.get("turns", [])[-1:] == ["echo wrong turn (3)"])
        assert graph.get_state(wrong.config).values["turns"][-1] == "echo wrong turn (3)"


def test_a_thread_id_that_is_no_session_id(tmp_path: Path) -> None:
    odd = "user 42 / chat: ünïcode"
    with JsonlCheckpointSaver(tmp_path) as saver:
        chat_graph(saver).invoke({"turns": ["hi"]}, thread(odd))
        session_id = saver.threads.session_id(odd)
        assert session_id is not None and session_id != odd
        assert saver.store.get_metadata(session_id, "langgraph.thread_id") == odd
    # A new saver finds it again from the thread id alone, and lists it under its own id.
    with JsonlCheckpointSaver(tmp_path) as saver:
        assert chat_graph(saver).get_state(thread(odd)).values["turns"] == ["hi", "echo hi (1)"]
        assert [t.config["configurable"]["thread_id"] for t in saver.list(None, limit=1)] == [odd]


def test_a_thread_whose_id_names_another_session(tmp_path: Path) -> None:
    store = LocalSessionService.open(tmp_path)
    store.create_session("main", "/home/me/project", None)  # the application's own session
    with JsonlCheckpointSaver(store) as saver:
        chat_graph(saver).invoke({"turns": ["hi"]}, thread("main"))
        assert saver.threads.session_id("main") not in (None, "main")
    assert store.load_events("main") == []


def test_prune_keeps_the_latest_and_trashes_the_rest(tmp_path: Path) -> None:
    with JsonlCheckpointSaver(tmp_path) as saver:
        graph = chat_graph(saver)
        for word in ("one", "two", "three"):
            graph.invoke({"turns": [word]}, thread("p"))
        before = graph.get_state(thread("p")).values
        old_log = saver.store.log_path("p").read_bytes()
        saver.prune(["p"])
        assert len(list(saver.list(thread("p")))) == 1
        assert graph.get_state(thread("p")).values == before
        assert (tmp_path / "trash" / REPLACED / "p.jsonl").read_bytes() == old_log  # the old log, whole
        graph.invoke({"turns": ["four"]}, thread("p"))  # the pruned thread carries on
        assert graph.get_state(thread("p")).values["turns"][-1] == "echo four (7)"
        assert saver.store.verify("p").ok
        saver.delete_thread("p")
        assert graph.get_state(thread("p")).values == {}
        assert [t.id for t in saver.store.list_trash()] == ["p"]


def test_async_graph_and_the_loop_keeps_running(tmp_path: Path) -> None:
    async def main() -> tuple[list[str], int]:
        async with JsonlCheckpointSaver(tmp_path) as saver:
            graph = chat_graph(saver)
            await graph.ainvoke({"turns": ["hi"]}, thread("a"))
            # Another holder of the session's lock makes the next write wait: the loop must not.
            held, release = threading.Event(), threading.Event()

            def hold() -> None:
                with saver.store.session_lock("a"):
                    held.set()
                    release.wait(5)

            holder = threading.Thread(target=hold)
            holder.start()
            held.wait(5)
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            ticker = asyncio.create_task(tick())
            turn = asyncio.create_task(graph.ainvoke({"turns": ["there"]}, thread("a")))
            await asyncio.sleep(0.3)
            release.set()
            result = await turn
            ticker.cancel()
            holder.join()
            return result["turns"], ticks

    turns, ticks = asyncio.run(main())
    assert turns == ["hi", "echo hi (1)", "there", "echo there (3)"]
    assert ticks >= 10


@pytest.mark.slow
def test_the_example_runs(tmp_path: Path) -> None:
    example = HERE.parents[2] / "examples" / "langgraph_example.py"
    done = subprocess.run(
        [sys.executable, str(example), str(tmp_path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "You said 'Thanks'; that makes 5 messages." in done.stdout
    assert "9 checkpoints, newest step 7" in done.stdout
    assert (tmp_path / "sessions" / "support-chat-1.jsonl").is_file()


def main(argv: list[str]) -> None:
    kind, store, thread_id, value = argv
    with JsonlCheckpointSaver(store) as saver:
        if kind == "chat":
            state = chat_graph(saver).invoke({"turns": [value]}, thread(thread_id))
        else:
            state = order_graph(saver).invoke(Command(resume=value), thread(thread_id))
    print(json.dumps(state))


if __name__ == "__main__":
    main(sys.argv[1:])
