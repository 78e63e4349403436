"""A Google ADK agent whose sessions live in a jsonl-sessions store: two turns, then a fresh service (as another
process would make) carries on, with session, user and app state.

Run it with ``python examples/adk_example.py`` (needs ``pip install 'jsonl-sessions[adk]'``); pass a folder to
keep the store there instead of in a temporary one. It runs offline: a small stand-in model replaces Gemini
(use ``LlmAgent(model="gemini-2.5-flash", ...)`` for a real one).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

from google.adk.agents import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.tools.tool_context import ToolContext
from google.genai import types

from sessions.integrations.adk import JsonlSessionService

APP, USER, SESSION = "helpdesk", "ann", "support-chat-1"


def take_note(note: str, tool_context: ToolContext) -> dict[str, Any]:
    """Keep a note in the session; count the user's notes across sessions and the app's across users."""
    notes = [*tool_context.state.get("notes", []), note]
    tool_context.state["notes"] = notes
    tool_context.state["user:notes_total"] = tool_context.state.get("user:notes_total", 0) + 1
    tool_context.state["app:notes_total"] = tool_context.state.get("app:notes_total", 0) + 1
    return {"note": note, "count": len(notes)}


class StandInModel(BaseLlm):
    """Stands in for Gemini: every user message becomes a note, then the answer says so."""

    model: str = "stand-in"

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        last = llm_request.contents[-1].parts or []
        if last and last[0].function_response is not None:
            result = last[0].function_response.response or {}
            text = f"noted {result.get('note')!r} ({result.get('count')} notes)"
            yield LlmResponse(content=types.Content(role="model", parts=[types.Part(text=text)]))
        else:
            call = types.FunctionCall(name="take_note", args={"note": last[0].text if last else ""})
            yield LlmResponse(content=types.Content(role="model", parts=[types.Part(function_call=call)]))


async def ask(runner: Runner, text: str) -> str:
    message = types.Content(role="user", parts=[types.Part(text=text)])
    reply = ""
    async for event in runner.run_async(user_id=USER, session_id=SESSION, new_message=message):
        if event.is_final_response() and event.content and event.content.parts:
            reply = event.content.parts[0].text or ""
    return reply


async def main(folder: Path) -> None:
    agent = LlmAgent(name="helpdesk", model=StandInModel(), instruction="Take notes.", tools=[take_note])

    async with JsonlSessionService(folder) as service:
        await service.create_session(app_name=APP, user_id=USER, session_id=SESSION, state={"lang": "en"})
        runner = Runner(agent=agent, app_name=APP, session_service=service)
        print(await ask(runner, "my card was declined"))

    # Later (another process would do the same): a new service on the same folder resumes the session.
    async with JsonlSessionService(folder) as service:
        runner = Runner(agent=agent, app_name=APP, session_service=service)
        print(await ask(runner, "call the bank"))
        session = await service.get_session(app_name=APP, user_id=USER, session_id=SESSION)
        assert session is not None
        print(f"{len(session.events)} events; state:")
        for key, value in sorted(session.state.items()):
            print(f"  {key} = {value}")
        print(f"log: {service.store.sync.log_path(service.log_id(APP, USER, SESSION) or '')}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        asyncio.run(main(Path(sys.argv[1])))
    else:
        with tempfile.TemporaryDirectory() as scratch:
            asyncio.run(main(Path(scratch) / "store"))
