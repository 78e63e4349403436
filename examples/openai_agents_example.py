"""An OpenAI Agents SDK agent whose session lives in a jsonl-sessions store: two turns, then a fresh session
object (as another process would make) carries on.

Run it with ``python examples/openai_agents_example.py`` (needs ``pip install 'jsonl-sessions[openai-agents]'``);
pass a folder to keep the store there instead of in a temporary one. It runs offline: a small stand-in model
replaces the OpenAI API (swap in a real one with ``Agent(model="gpt-4.1", ...)``).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from agents import Agent, Model, ModelResponse, RunConfig, Runner, Usage, function_tool
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

from sessions.integrations.openai_agents import JsonlSession


@function_tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


class StandInModel(Model):
    """Stands in for a model: calls ``add`` when asked to add, otherwise counts the user messages it was shown."""

    async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any) -> ModelResponse:  # noqa: A002
        items = [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
        if items[-1].get("type") == "function_call_output":
            return self.say(f"the sum is {items[-1]['output']}")
        users = [item for item in items if item.get("role") == "user"]
        words = str(users[-1]["content"]).split()
        if words[:1] == ["add"]:
            arguments = json.dumps({"a": int(words[1]), "b": int(words[2])})
            call = ResponseFunctionToolCall(type="function_call", call_id="call-1", name="add", arguments=arguments)
            return ModelResponse(output=[call], usage=Usage(), response_id=None)
        return self.say(f"you said {words[-1]!r}; {len(users)} user messages so far")

    def say(self, text: str) -> ModelResponse:
        content: list[Any] = [ResponseOutputText(type="output_text", text=text, annotations=[])]
        message = ResponseOutputMessage(id="msg", type="message", role="assistant", status="completed", content=content)
        return ModelResponse(output=[message], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError


async def main(folder: Path) -> None:
    agent = Agent(name="assistant", instructions="Be brief.", model=StandInModel(), tools=[add])
    run = RunConfig(tracing_disabled=True)

    async with JsonlSession("support-chat-1", folder) as session:
        print((await Runner.run(agent, "hello", session=session, run_config=run)).final_output)
        print((await Runner.run(agent, "add 2 3", session=session, run_config=run)).final_output)

    # Later (another process would do the same): a new session object on the same folder resumes it.
    async with JsonlSession("support-chat-1", folder) as session:
        print((await Runner.run(agent, "thanks", session=session, run_config=run)).final_output)
        print(f"{len(await session.get_items())} items; the last two: {await session.get_items(limit=2)}")
        print(f"log: {session.store.sync.log_path(session.log_id or '')}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        asyncio.run(main(Path(sys.argv[1])))
    else:
        with tempfile.TemporaryDirectory() as scratch:
            asyncio.run(main(Path(scratch) / "store"))
