"""Suite 6: a store that crashes between any two steps, checked against an in-memory model.

Steps persist events, write metadata and server ids, list (which saves the
index), close, and crash: drop the service without closing it, or drop it and
cut the log at an arbitrary byte inside its last record (what a power cut can
leave of an unsynced write), then reopen and resume. The model is the list of
records in file order; a cut removes the last one from it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Final

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from eventlog import read_log, verify_log
from sessions import (
    DamagedLogWarning,
    LocalSessionService,
    SessionManager,
    Text,
    UserMessage,
)
from sessions.events import EventBase

KEYS: Final = ("tracker", "permissions")
TALLY: Final[Counter[str]] = Counter()
Model = list[tuple[str, str, str]]
"""Records after the header, in file order: ("event", content, ""), ("meta", key, value), ("server", id, "")."""


class CrashingStore(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="crash-sm-"))
        self.records: Model = []
        self.created = False
        self.torn = False
        self.counter = 0
        self.service = LocalSessionService.open(self.root, durability="flush")
        self.manager = SessionManager.create_new(self.service, "/model", None)
        self.events: list[EventBase] = []

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    @initialize(durability=st.sampled_from(["fsync", "flush"]))
    def choose_durability(self, durability: str) -> None:
        self.service = LocalSessionService.open(self.root, durability=durability)
        self.manager = SessionManager.create_new(self.service, "/model", None)

    # -- what the model expects ---------------------------------------------------------

    def model_events(self) -> list[str]:
        return [a for kind, a, _ in self.records if kind == "event"]

    def model_metadata(self, key: str) -> str | None:
        values = [b for kind, a, b in self.records if kind == "meta" and a == key]
        return values[-1] if values else None

    def model_server(self) -> str | None:
        values = [a for kind, a, _ in self.records if kind == "server"]
        return values[-1] if values else None

    @property
    def log(self) -> Path:
        return self.root / "sessions" / f"{self.manager.session_id}.jsonl"

    # -- steps ----------------------------------------------------------------------------

    @rule(n=st.integers(1, 3))
    def persist(self, n: int) -> None:
        for _ in range(n):
            self.counter += 1
            content = f"m{self.counter}"
            self.events.append(UserMessage(content) if self.counter % 2 else Text(content))
            self.records.append(("event", content, ""))
        self.manager.persist_events(self.events)
        self.created, self.torn = True, False

    @rule(key=st.sampled_from(KEYS), value=st.text(max_size=8) | st.text(min_size=600, max_size=700))
    def set_metadata(self, key: str, value: str) -> None:
        unchanged = self.created and self.model_metadata(key) == value
        self.manager.set_metadata(key, value)
        if not unchanged:
            self.records.append(("meta", key, value))
            self.created, self.torn = True, False

    @rule(server=st.sampled_from(["srv-1", "srv-2", "s" * 600]))
    def server_id(self, server: str) -> None:
        unchanged = self.created and self.model_server() == server
        self.manager.persist_server_session_id(server)
        if not unchanged:
            self.records.append(("server", server, ""))
            self.created, self.torn = True, False

    @rule()
    def list_and_save_index(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DamagedLogWarning)
            listed = self.service.list_sessions()
        assert [s.event_count for s in listed] == ([len(self.model_events())] if self.created else [])

    @rule()
    def close(self) -> None:
        self.service.close()

    @precondition(lambda self: self.created)
    @rule()
    def crash(self) -> None:
        """The process dies: the service is dropped without close; nothing acknowledged may be lost."""
        TALLY["crashes"] += 1
        self.reopen()

    @precondition(lambda self: self.created and self.records)
    @rule(data=st.data())
    def crash_and_cut_last_record(self, data: st.DataObject) -> None:
        """The machine dies before the last write reached the disk: the log ends inside its last record."""
        content = self.log.read_bytes()
        end = content.rfind(b"\n") + 1  # a torn tail left by an earlier cut is not a record
        start = content[: end - 1].rfind(b"\n") + 1
        cut = data.draw(st.integers(start, end - 1), label="cut at")
        os.truncate(self.log, cut)
        TALLY["crashes with a cut record"] += 1
        self.records.pop()
        self.torn = cut > start
        self.reopen()

    def reopen(self) -> None:
        self.service = LocalSessionService.open(self.root, durability=self.service.durability)
        stored = self.service.get_session(self.manager.session_id)
        assert stored is not None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DamagedLogWarning)
            resumed = SessionManager.resume(self.service, stored)
        assert bool(caught) == self.torn
        self.manager = resumed.manager
        self.events = list(resumed.events)
        assert [e.content for e in self.events if isinstance(e, UserMessage | Text)] == self.model_events()
        assert resumed.server_session_id == self.model_server()

    # -- what must always hold ------------------------------------------------------------

    @invariant()
    def disk_matches_model(self) -> None:
        if not self.created:
            assert not self.log.exists()
            return
        fresh = LocalSessionService.open(self.root)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DamagedLogWarning)
            events = fresh.load_events(self.manager.session_id)
            stored = fresh.get_session(self.manager.session_id)
            listed = fresh.list_sessions()
        assert [msgspec.json.decode(e.event_data)["content"] for e in events] == self.model_events()
        assert stored is not None and stored.event_count == len(self.model_events())
        assert stored.server_session_id == self.model_server()
        assert [s.event_count for s in listed] == [len(self.model_events())]
        for key in KEYS:
            assert fresh.get_metadata(self.manager.session_id, key) == self.model_metadata(key)
        report = verify_log(self.log)
        assert [f.kind for f in report.findings] == (["torn_tail"] if self.torn else [])
        assert len(report.heads) <= 1
        assert (read_log(self.log).torn is not None) == self.torn


def run(examples: int, steps: int) -> None:
    CrashingStore.TestCase.settings = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    CrashingStore.TestCase().runTest()
    assert TALLY["crashes with a cut record"] > 0


def test_crash_state_machine_quick() -> None:
    run(examples=60, steps=25)


@pytest.mark.stress
def test_crash_state_machine_stress() -> None:
    TALLY.clear()
    run(examples=int(os.environ.get("RELIABILITY_SM_EXAMPLES", "1500")), steps=40)
    print(f"\ncrash state machine: {dict(TALLY)}")
