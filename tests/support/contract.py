"""Contract tests written once against the SessionService protocol.

Each implementation subclasses :class:`SessionServiceContract` and provides
``make_service``; pytest collects the subclasses (their names start with Test).
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

import pytest

from eventlog import new_id, utcnow
from sessions import (
    InvalidSessionId,
    SessionConflict,
    SessionExists,
    SessionNotFound,
    SessionsError,
    SessionService,
    StoredEvent,
    Text,
    UserMessage,
    serialize_event,
)


def stored_events(session_id: str, parent: str | None, count: int, invocation: str = "inv") -> list[StoredEvent]:
    """``count`` events chained onto ``parent``."""
    batch = []
    for n in range(count):
        event_type, event_data = serialize_event(UserMessage(f"message {n}") if n % 2 == 0 else Text(f"reply {n}"))
        event_id = new_id()
        batch.append(
            StoredEvent(
                id=event_id,
                session_id=session_id,
                parent_id=parent,
                invocation_id=invocation,
                event_type=event_type,
                event_data=event_data,
                created_at=utcnow(),
            )
        )
        parent = event_id
    return batch


class SessionServiceContract:
    """What every :class:`SessionService` must do."""

    implementation: ClassVar[str]

    def make_service(self) -> SessionService:
        raise NotImplementedError

    @pytest.fixture
    def service(self) -> SessionService:
        return self.make_service()

    def test_satisfies_protocol(self, service: SessionService) -> None:
        assert isinstance(service, SessionService)

    def test_create_then_get(self, service: SessionService) -> None:
        sid = new_id()
        before = utcnow()
        created = service.create_session(sid, "/work/a", "/work")
        got = service.get_session(sid)
        assert got is not None
        assert (got.id, got.directory, got.git_root) == (sid, "/work/a", "/work")
        assert got.created_at == created.created_at == got.updated_at
        assert got.created_at >= before - dt.timedelta(seconds=1)
        assert got.created_at.tzinfo is not None and got.created_at.utcoffset() == dt.timedelta(0)
        assert got.archived_at is None and got.server_session_id is None and got.head_id is None

    def test_create_twice_is_refused(self, service: SessionService) -> None:
        sid = new_id()
        service.create_session(sid, None, None)
        with pytest.raises(SessionExists):
            service.create_session(sid, "/other", None)

    def test_unknown_session(self, service: SessionService) -> None:
        sid = new_id()
        assert service.get_session(sid) is None
        with pytest.raises(SessionNotFound):
            service.load_events(sid)
        with pytest.raises(KeyError):
            service.set_metadata(sid, "k", "v")
        with pytest.raises(SessionNotFound):
            service.append_events(sid, stored_events(sid, None, 1))

    @pytest.mark.parametrize(
        "bad",
        [
            "../etc/passwd",
            "/abs/path",
            "a/b",
            "x\x00y",
            "",
            ".hidden",
            "-flag",
            "trailing.",
            "a b",
            "x" * 129,
            "NUL",
            "com1.txt",
            "thread.sync-conflict-20240101-000000-ABCDEFG",
            "caf\u00e9",
            "01A21030-374A-71EA-9237-6B4A56659E99",  # a UUID only in lower case
        ],
    )
    def test_bad_session_id_is_refused(self, service: SessionService, bad: str) -> None:
        with pytest.raises(InvalidSessionId) as caught:
            service.create_session(bad, None, None)
        assert isinstance(caught.value, SessionsError) and isinstance(caught.value, ValueError)
        assert repr(bad) in str(caught.value)
        with pytest.raises(InvalidSessionId):
            service.get_session(bad)

    @pytest.mark.parametrize(
        "sid", ["thread-1", "User_42.chat", "a", "x" * 128, "01a21030-374a-71ea-9237-6b4a56659e99"]
    )
    def test_application_session_ids(self, service: SessionService, sid: str) -> None:
        service.create_session(sid, "/p", None)
        service.append_events(sid, stored_events(sid, None, 2))
        stored = service.get_session(sid)
        assert stored is not None and stored.id == sid and stored.event_count == 2
        assert [e.session_id for e in service.load_events(sid)] == [sid, sid]
        assert sid in [s.id for s in service.list_sessions()]
        found = service.find_resumable("/p", None, 3600)
        assert found is not None and found.id == sid

    def test_ids_differing_only_in_case_are_refused(self, service: SessionService) -> None:
        service.create_session("Thread-A", None, None)
        for clash in ("thread-a", "THREAD-A", "tHREAD-a"):
            with pytest.raises(SessionExists):
                service.create_session(clash, None, None)
        assert service.get_session("thread-a") is None
        service.create_session("thread-b", None, None)
        with pytest.raises(SessionExists):
            service.create_session("Thread-B", None, None)

    def test_append_and_load_in_order(self, service: SessionService) -> None:
        sid = new_id()
        service.create_session(sid, None, None)
        first = stored_events(sid, None, 3)
        service.append_events(sid, first)
        second = stored_events(sid, first[-1].id, 2)
        service.append_events(sid, second)
        loaded = service.load_events(sid)
        assert [e.id for e in loaded] == [e.id for e in first + second]
        assert [e.event_data for e in loaded] == [e.event_data for e in first + second]
        stored = service.get_session(sid)
        assert stored is not None
        assert stored.head_id == second[-1].id
        assert stored.updated_at == second[-1].created_at

    def test_append_event_single(self, service: SessionService) -> None:
        sid = new_id()
        service.create_session(sid, None, None)
        service.append_event(sid, new_id(), None, "inv", "user_message", '{"content":"x"}')
        [event] = service.load_events(sid)
        assert (event.event_type, event.event_data, event.invocation_id) == ("user_message", '{"content":"x"}', "inv")

    def test_append_not_on_head_conflicts_and_writes_nothing(self, service: SessionService) -> None:
        sid = new_id()
        service.create_session(sid, None, None)
        first = stored_events(sid, None, 2)
        service.append_events(sid, first)
        with pytest.raises(SessionConflict):
            service.append_events(sid, stored_events(sid, first[0].id, 2))  # forks off the old head
        with pytest.raises(SessionConflict):
            service.append_events(sid, stored_events(sid, None, 1))  # a fresh list after resume
        assert [e.id for e in service.load_events(sid)] == [e.id for e in first]

    def test_find_resumable_matches_directory_or_git_root(self, service: SessionService) -> None:
        a, b = new_id(), new_id()
        service.create_session(a, "/repo/sub", "/repo")
        service.create_session(b, "/elsewhere", None)
        found = service.find_resumable("/repo/sub", None, 3600)
        assert found is not None and found.id == a
        found = service.find_resumable("/repo/other", "/repo", 3600)
        assert found is not None and found.id == a
        found = service.find_resumable("/elsewhere", "/nope", 3600)
        assert found is not None and found.id == b
        assert service.find_resumable("/nowhere", "/nope", 3600) is None
        assert service.find_resumable(None, None, 3600) is None
        assert service.find_resumable(None, "/nope", 3600) is None

    def test_none_never_matches_none(self, service: SessionService) -> None:
        service.create_session(new_id(), None, None)
        assert service.find_resumable(None, None, 3600) is None
        assert service.find_resumable("/x", None, 3600) is None

    def test_find_resumable_prefers_most_recent_update(self, service: SessionService) -> None:
        older, newer = new_id(), new_id()
        service.create_session(older, "/d", None)
        service.create_session(newer, "/d", None)
        service.append_events(older, stored_events(older, None, 1))  # now the most recently updated
        found = service.find_resumable("/d", None, 3600)
        assert found is not None and found.id == older

    def test_find_resumable_skips_archived_and_old(self, service: SessionService) -> None:
        sid = new_id()
        service.create_session(sid, "/d", None)
        assert service.find_resumable("/d", None, 0) is None  # updated_at is not strictly after now
        service.archive(sid)
        assert service.find_resumable("/d", None, 3600) is None
        service.unarchive(sid)
        found = service.find_resumable("/d", None, 3600)
        assert found is not None and found.id == sid

    def test_archive_keeps_everything(self, service: SessionService) -> None:
        sid = new_id()
        service.create_session(sid, "/d", None)
        events = stored_events(sid, None, 2)
        service.append_events(sid, events)
        service.archive(sid)
        stored = service.get_session(sid)
        assert stored is not None and stored.archived_at is not None
        assert [e.id for e in service.load_events(sid)] == [e.id for e in events]
        assert sid not in [s.id for s in service.list_sessions()]
        assert sid in [s.id for s in service.list_sessions(include_archived=True)]

    def test_list_sessions_newest_first(self, service: SessionService) -> None:
        ids = [new_id() for _ in range(3)]
        for sid in ids:
            service.create_session(sid, None, None)
        service.append_events(ids[0], stored_events(ids[0], None, 1))
        listed = [s.id for s in service.list_sessions()]
        assert listed == [ids[0], ids[2], ids[1]]

    def test_server_session_id_does_not_touch_updated_at(self, service: SessionService) -> None:
        sid = new_id()
        service.create_session(sid, None, None)
        before = service.get_session(sid)
        service.update_server_session_id(sid, "srv-1")
        service.update_server_session_id(sid, "srv-2")
        after = service.get_session(sid)
        assert before is not None and after is not None
        assert after.server_session_id == "srv-2"
        assert after.updated_at == before.updated_at

    def test_metadata_upsert_and_missing(self, service: SessionService) -> None:
        sid = new_id()
        service.create_session(sid, None, None)
        assert service.get_metadata(sid, "tracker") is None
        service.set_metadata(sid, "tracker", '{"files": []}')
        service.set_metadata(sid, "tracker", '{"files": ["a.py"]}')
        service.set_metadata(sid, "ключ 🔑", 'värde\n\t"quoted"')
        assert service.get_metadata(sid, "tracker") == '{"files": ["a.py"]}'
        assert service.get_metadata(sid, "ключ 🔑") == 'värde\n\t"quoted"'
        assert service.get_metadata(sid, "other") is None

    def test_large_metadata_value(self, service: SessionService) -> None:
        sid = new_id()
        service.create_session(sid, None, None)
        value = "x" * 10_000
        service.set_metadata(sid, "big", value)
        assert service.get_metadata(sid, "big") == value

    def test_verify_clean_session(self, service: SessionService) -> None:
        sid = new_id()
        service.create_session(sid, None, None)
        events = stored_events(sid, None, 3)
        service.append_events(sid, events)
        report = service.verify(sid)
        assert report.ok and not report.forked
        assert report.events == 3 and report.heads == [events[-1].id]

    # -- windows, forks and the trash --------------------------------------------------

    def test_windows_of_the_events(self, service: SessionService) -> None:
        session_id = new_id()
        service.create_session(session_id, "/p", None)
        batch = stored_events(session_id, None, 5)
        service.append_events(session_id, batch)
        ids = [e.id for e in batch]
        assert [e.id for e in service.load_events(session_id, last=2)] == ids[-2:]
        assert [e.id for e in service.load_events(session_id, last=99)] == ids
        assert service.load_events(session_id, last=0) == []
        assert [e.id for e in service.load_events(session_id, from_compaction=True)] == ids

    def test_fork_holds_the_branch_up_to_the_event(self, service: SessionService) -> None:
        session_id = new_id()
        service.create_session(session_id, "/p", "/git")
        batch = stored_events(session_id, None, 4)
        service.append_events(session_id, batch)
        fork = service.fork_session(session_id, batch[1].id)
        assert (fork.directory, fork.git_root, fork.forked_from, fork.fork_event_id) == (
            "/p",
            "/git",
            session_id,
            batch[1].id,
        )
        assert [e.event_data for e in service.load_events(fork.id)] == [e.event_data for e in batch[:2]]
        whole = service.fork_session(session_id)
        assert whole.event_count == 4 and whole.fork_event_id == batch[-1].id
        service.delete_session(session_id)  # a fork stands on its own
        assert [e.event_data for e in service.load_events(whole.id)] == [e.event_data for e in batch]
        with pytest.raises(SessionNotFound):
            service.fork_session(whole.id, "no-such-event")

    def test_delete_restore_and_purge(self, service: SessionService) -> None:
        session_id = new_id()
        service.create_session(session_id, "/p", None)
        service.append_events(session_id, stored_events(session_id, None, 3))
        service.delete_session(session_id)
        assert service.get_session(session_id) is None
        assert service.find_resumable("/p", None, 3600) is None
        assert session_id not in {s.id for s in service.list_sessions(include_archived=True)}
        assert [t.id for t in service.list_trash()] == [session_id]
        with pytest.raises(SessionNotFound):
            service.delete_session(session_id)
        service.restore_session(session_id)
        restored = service.get_session(session_id)
        assert restored is not None and restored.event_count == 3
        assert service.list_trash() == []
        with pytest.raises(SessionNotFound):
            service.restore_session(session_id)
        service.delete_session(session_id)
        assert service.purge_trash(3600) == 0  # too recent
        assert service.purge_trash(-1) == 1
        assert service.list_trash() == []
        with pytest.raises(SessionNotFound):
            service.restore_session(session_id)

    def test_rewind_makes_an_event_the_head(self, service: SessionService) -> None:
        session_id = new_id()
        service.create_session(session_id, "/p", None)
        batch = stored_events(session_id, None, 4)
        service.append_events(session_id, batch)
        service.rewind(session_id, batch[1].id)
        assert [e.id for e in service.load_events(session_id)] == [batch[0].id, batch[1].id]
        stored = service.get_session(session_id)
        assert stored is not None and stored.head_id == batch[1].id
        more = stored_events(session_id, batch[1].id, 2)
        service.append_events(session_id, more)
        assert [e.id for e in service.load_events(session_id)] == [batch[0].id, batch[1].id, *(e.id for e in more)]
        with pytest.raises(SessionConflict):  # the old head is no longer the head
            service.append_events(session_id, stored_events(session_id, batch[3].id, 1))
        with pytest.raises(SessionNotFound):
            service.rewind(session_id, "no-such-event")
        service.rewind(session_id, None)
        assert service.load_events(session_id) == []
