"""JsonlSession under a real Agents SDK Runner with a fake model: turns, a tool call, a resume in a new process.

Run as a script, this module is the "new process": ``python test_openai_agents_runner.py STORE SESSION INPUT``
runs one turn against the store and prints the final output and the session's items as JSON.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("agents", reason="needs the openai-agents extra (make test installs it)")

from agents import Agent, Model, ModelResponse, RunConfig, Runner, Usage, function_tool
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

from sessions import LocalSessionService
from sessions.integrations.openai_agents import EVENT_TYPES, JsonlSession

HERE = Path(__file__)
RUN = RunConfig(tracing_disabled=True)


def _text(item: Any) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


class FakeModel(Model):
    """Names every user message it is shown (so a resumed history shows), and calls ``add`` for ``add A B``."""

    def __init__(self) -> None:
        self.inputs: list[list[Any]] = []

    async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any) -> ModelResponse:  # noqa: A002
        items = [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
        self.inputs.append(items)
        last = items[-1]
        if last.get("type") == "function_call_output":
            return self._say(f"the sum is {last['output']}")
        users = [_text(item) for item in items if item.get("role") == "user"]
        words = users[-1].split()
        if words[:1] == ["add"]:
            call = ResponseFunctionToolCall(
                type="function_call",
                call_id=f"call-{len(users)}",
                name="add",
                arguments=json.dumps({"a": int(words[1]), "b": int(words[2])}),
                id=f"fc-{len(users)}",
            )
            return ModelResponse(output=[call], usage=Usage(), response_id=None)
        return self._say(f"echo {users[-1]} [{' | '.join(users)}]")

    def _say(self, text: str) -> ModelResponse:
        message = ResponseOutputMessage(
            id=f"msg-{len(self.inputs)}",
            type="message",
            role="assistant",
            status="completed",
            content=[ResponseOutputText(type="output_text", text=text, annotations=[])],
        )
        return ModelResponse(output=[message], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("these tests do not stream")


@function_tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def agent(model: Model) -> Agent[Any]:
    return Agent(name="assistant", instructions="Be brief.", model=model, tools=[add])


async def turn(store: Path, session_id: str, text: str, model: FakeModel | None = None) -> tuple[str, list[Any]]:
    async with JsonlSession(session_id, store) as session:
        result = await Runner.run(agent(model or FakeModel()), text, session=session, run_config=RUN)
        return str(result.final_output), await session.get_items()


def in_new_process(store: Path, session_id: str, text: str) -> tuple[str, list[Any]]:
    done = subprocess.run(
        [sys.executable, str(HERE), str(store), session_id, text],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    output, items = json.loads(done.stdout)
    return output, items


@pytest.mark.slow
def test_turns_with_a_tool_call_resume_in_a_new_process(tmp_path: Path) -> None:
    store = tmp_path / "store"
    model = FakeModel()
    output, items = asyncio.run(turn(store, "user-7.chat", "hello", model))
    assert output == "echo hello [hello]"
    output, items = asyncio.run(turn(store, "user-7.chat", "add 2 40", model))
    assert output == "the sum is 42"
    # The model was shown the first turn: the session gave it the stored history.
    assert [_text(i) for i in model.inputs[1] if i.get("role") == "user"] == ["hello", "add 2 40"]
    kinds = [item.get("type", "message") for item in items]
    assert kinds == ["message", "message", "message", "function_call", "function_call_output", "message"]

    output, resumed = in_new_process(store, "user-7.chat", "bye")
    assert output == "echo bye [hello | add 2 40 | bye]"
    assert resumed[: len(items)] == items
    assert len(resumed) == len(items) + 2

    # The log is the SDK session's, under its own id, one event per item, readable by the store.
    with LocalSessionService.open(store, event_types=EVENT_TYPES) as sync:
        events = sync.load_events("user-7.chat")
        assert len(events) == len(resumed)
        assert {e.event_type for e in events} == {"openai_agents_item"}
        assert sync.verify("user-7.chat").ok
        assert sync.verify("user-7.chat").unknown_types == {}


@pytest.mark.slow
def test_a_run_after_pop_and_clear(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = tmp_path / "store"
        async with JsonlSession("s", store) as session:
            model = FakeModel()
            await Runner.run(agent(model), "one", session=session, run_config=RUN)
            await Runner.run(agent(model), "two", session=session, run_config=RUN)
            popped: Any = await session.pop_item()
            assert popped["role"] == "assistant"
            assert _text(await session.pop_item() or {}) == "two"
            result = await Runner.run(agent(model), "three", session=session, run_config=RUN)
            assert result.final_output == "echo three [one | three]"
            await session.clear_session()
            result = await Runner.run(agent(model), "four", session=session, run_config=RUN)
            assert result.final_output == "echo four [four]"
        output, _ = in_new_process(store, "s", "five")
        assert output == "echo five [four | five]"

    asyncio.run(scenario())


def test_session_settings_limit_bounds_what_the_model_sees(tmp_path: Path) -> None:
    async def scenario() -> None:
        model = FakeModel()
        async with JsonlSession("limited", tmp_path, session_settings={"limit": 2}) as session:
            for text in ("a", "b", "c"):
                await Runner.run(agent(model), text, session=session, run_config=RUN)
            assert len(await session.get_items(limit=100)) == 6
        # The third turn saw the last two stored items (b and its answer), then its own input.
        assert [_text(i) for i in model.inputs[-1]] == ["b", "echo b [a | b]", "c"]

    asyncio.run(scenario())


@pytest.mark.slow
def test_the_example_runs(tmp_path: Path) -> None:
    example = HERE.parents[2] / "examples" / "openai_agents_example.py"
    done = subprocess.run(
        [sys.executable, str(example), str(tmp_path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "the sum is 5" in done.stdout
    assert "3 user messages so far" in done.stdout
    assert (tmp_path / "sessions" / "support-chat-1.jsonl").is_file()


def main(argv: list[str]) -> None:
    store, session_id, text = argv
    print(json.dumps(asyncio.run(turn(Path(store), session_id, text))))


if __name__ == "__main__":
    main(sys.argv[1:])
