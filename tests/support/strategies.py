"""Hypothesis strategies for conversation events."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from sessions import (
    Compaction,
    EventBase,
    OutOfBandOutput,
    SkillInvocation,
    SystemContext,
    Text,
    ToolCall,
    ToolResult,
    UserMessage,
)

texts = st.text(max_size=40)
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)

events: st.SearchStrategy[EventBase] = st.one_of(
    st.builds(UserMessage, texts),
    st.builds(Text, texts),
    st.builds(ToolCall, texts, texts, json_values),
    st.builds(ToolResult, texts, texts, st.booleans(), st.booleans(), st.none() | st.integers(0, 10**9)),
    st.builds(OutOfBandOutput, name=texts, command=st.none() | texts, content=texts),
    st.builds(SystemContext, texts),
    st.builds(SkillInvocation, name=texts, arguments=st.none() | texts, content=texts),
)

compactions: st.SearchStrategy[Compaction] = st.builds(
    Compaction, summary=texts, tokens_before=st.none() | st.integers(0, 10**9)
)
conversation_events: st.SearchStrategy[EventBase] = st.one_of(events, compactions)
"""Events as a conversation holds them: the usual ones, and now and then a compaction checkpoint."""
