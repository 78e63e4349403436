"""A LangGraph graph whose threads live in a jsonl-sessions store: two turns, then a fresh saver carries on.

Run it with ``python examples/langgraph_example.py`` (needs ``pip install 'jsonl-sessions[langgraph]'``);
pass a folder to keep the store there instead of in a temporary one.
"""

from __future__ import annotations

import operator
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from sessions.integrations.langgraph import JsonlCheckpointSaver


class Chat(TypedDict):
    messages: Annotated[list[str], operator.add]


def assistant(state: Chat) -> dict[str, Any]:
    """Stands in for a model call: answers the last message."""
    return {"messages": [f"You said {state['messages'][-1]!r}; that makes {len(state['messages'])} messages."]}


def build(saver: JsonlCheckpointSaver) -> CompiledStateGraph[Any, Any, Any, Any]:
    graph = StateGraph(Chat)
    graph.add_node("assistant", assistant)
    graph.add_edge(START, "assistant")
    graph.add_edge("assistant", END)
    return graph.compile(checkpointer=saver)


def main(folder: Path) -> None:
    thread: RunnableConfig = {"configurable": {"thread_id": "support-chat-1"}}

    with JsonlCheckpointSaver(folder) as saver:
        graph = build(saver)
        graph.invoke({"messages": ["Hello"]}, thread)
        graph.invoke({"messages": ["My order is late"]}, thread)

    # Later (another process would do the same): a new saver on the same folder resumes the thread.
    with JsonlCheckpointSaver(folder) as saver:
        graph = build(saver)
        state = graph.invoke({"messages": ["Thanks"]}, thread)
        for message in state["messages"]:
            print(message)
        steps = [snapshot.metadata["step"] for snapshot in graph.get_state_history(thread) if snapshot.metadata]
        print(f"{len(steps)} checkpoints, newest step {steps[0]}")
        session_id = saver.threads.session_id("support-chat-1")
        print(f"log: {saver.store.log_path(session_id or '')}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as scratch:
            main(Path(scratch) / "store")
