"""JsonlSessionService under a real ADK Runner with a fake model: turns, a tool changing state in every scope,
a resume in a new process.

Run as a script, this module is the "new process": ``python test_adk_runner.py STORE USER SESSION INPUT`` runs one
turn against the store and prints the reply, the session's state and its event count as JSON.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("google.adk", reason="needs the adk extra (make test installs it)")

from google.adk.agents import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.tools.tool_context import ToolContext
from google.genai import types

from sessions import LocalSessionService
from sessions.integrations.adk import EVENT_TYPES, JsonlSessionService

HERE = Path(__file__)
APP = "notes"


class FakeLlm(BaseLlm):
    """Calls ``remember`` for "remember X"; otherwise names every user message it was shown."""

    model: str = "fake"

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse, None]:
        contents = llm_request.contents
        last = contents[-1].parts[-1] if contents and contents[-1].parts else None
        if last is not None and last.function_response is not None:
            text = f"noted ({(last.function_response.response or {}).get('count')})"
            yield LlmResponse(content=types.Content(role="model", parts=[types.Part(text=text)]))
            return
        users = [p.text for c in contents if c.role == "user" for p in c.parts or [] if p.text]
        said = users[-1] if users else ""
        if said.startswith("remember "):
            call = types.FunctionCall(name="remember", args={"note": said.removeprefix("remember ")})
            yield LlmResponse(content=types.Content(role="model", parts=[types.Part(function_call=call)]))
            return
        yield LlmResponse(content=types.Content(role="model", parts=[types.Part(text=f"[{' | '.join(users)}]")]))


def remember(note: str, tool_context: ToolContext) -> dict[str, Any]:
    """Remember a note: in the session, for the user, for the app, and scratch space for this turn."""
    state = tool_context.state
    notes = [*state.get("notes", []), note]
    state["notes"] = notes
    state["user:notes_total"] = state.get("user:notes_total", 0) + 1
    state["app:notes_everywhere"] = state.get("app:notes_everywhere", 0) + 1
    state["temp:scratch"] = note.upper()
    return {"count": len(notes)}


def runner(service: JsonlSessionService) -> Runner:
    agent = LlmAgent(name="notes", model=FakeLlm(), instruction="Take notes.", tools=[remember], output_key="reply")
    return Runner(agent=agent, app_name=APP, session_service=service)


async def turn(store: Path, user: str, session_id: str, text: str) -> dict[str, Any]:
    async with JsonlSessionService(store) as service:
        if await service.get_session(app_name=APP, user_id=user, session_id=session_id) is None:
            await service.create_session(app_name=APP, user_id=user, session_id=session_id, state={"lang": "en"})
        reply = ""
        message = types.Content(role="user", parts=[types.Part(text=text)])
        async for event in runner(service).run_async(user_id=user, session_id=session_id, new_message=message):
            if event.is_final_response() and event.content and event.content.parts:
                reply = event.content.parts[0].text or ""
        session = await service.get_session(app_name=APP, user_id=user, session_id=session_id)
        assert session is not None
        return {"reply": reply, "state": session.state, "events": len(session.events)}


def in_new_process(store: Path, user: str, session_id: str, text: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(HERE), str(store), user, session_id, text],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.slow
def test_turns_resume_in_a_new_process_with_state_in_every_scope(tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = asyncio.run(turn(store, "ann", "s1", "hello"))
    assert first["reply"] == "[hello]"
    second = asyncio.run(turn(store, "ann", "s1", "remember milk"))
    assert second["reply"] == "noted (1)"
    assert second["state"] == {
        "lang": "en",
        "notes": ["milk"],
        "reply": "noted (1)",
        "user:notes_total": 1,
        "app:notes_everywhere": 1,
    }  # no temp:scratch: temp state is not stored

    third = in_new_process(store, "ann", "s1", "remember eggs")
    assert third["reply"] == "noted (2)"
    assert third["state"]["notes"] == ["milk", "eggs"]
    fourth = in_new_process(store, "ann", "s1", "what now")
    assert fourth["reply"] == "[hello | remember milk | remember eggs | what now]"
    assert fourth["events"] == 2 + 4 + 4 + 2  # user and reply; user, call, response, reply...

    # Another session of the same user shares user: and app: state; another user shares app: state only.
    other = in_new_process(store, "ann", "s2", "remember tea")
    assert other["state"]["notes"] == ["tea"]
    assert other["state"]["user:notes_total"] == 3
    assert other["state"]["app:notes_everywhere"] == 3
    bob = asyncio.run(turn(store, "bob", "s1", "remember jam"))
    assert bob["state"]["notes"] == ["jam"]
    assert bob["state"]["user:notes_total"] == 1
    assert bob["state"]["app:notes_everywhere"] == 4

    with LocalSessionService.open(store, event_types=EVENT_TYPES) as sync:
        # ann's s1 has its own id; bob's s1 could not, so it has a uuid5; the state logs are apart.
        assert {s.labels.get("adk.kind") for s in sync.list_sessions()} == {"session", "user_state", "app_state"}
        assert sync.load_events("s1")[0].event_type == "adk_event"
        for session in sync.list_sessions():
            report = sync.verify(session.id)
            assert report.ok and report.unknown_types == {}


@pytest.mark.slow
def test_the_example_runs(tmp_path: Path) -> None:
    example = HERE.parents[2] / "examples" / "adk_example.py"
    done = subprocess.run(
        [sys.executable, str(example), str(tmp_path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "noted 'call the bank' (2 notes)" in done.stdout
    assert "user:notes_total = 2" in done.stdout
    assert (tmp_path / "sessions" / "support-chat-1.jsonl").is_file()


def main(argv: list[str]) -> None:
    store, user, session_id, text = argv
    print(json.dumps(asyncio.run(turn(Path(store), user, session_id, text))))


if __name__ == "__main__":
    main(sys.argv[1:])
