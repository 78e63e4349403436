"""Suite 5: security. Hostile ids, symlinks, permissions under any umask, and any unicode in values.

- An id that is not a canonical UUID (``../``, absolute paths, separators, NUL,
  look-alike characters) is refused before any path is built: nothing appears
  anywhere on disk.
- A symlinked log, index, store folder or trash folder is refused, and its
  target is never written.
- Files are 0600 and folders 0700 whatever the umask.
- Metadata keys and values, directories and server ids with any unicode round-trip.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlog import new_id, utcnow
from sessions import (
    DamagedLogWarning,
    LocalSessionService,
    SessionManager,
    StoredEvent,
    UnsafeStorePath,
    UserMessage,
)
from sessions.protocol import check_session_id

CANONICAL: Final = "01234567-89ab-7def-8123-456789abcdef"
HOSTILE_IDS: Final = [
    "../../etc/passwd",
    "../" + CANONICAL,
    "/etc/passwd",
    "/" + CANONICAL,
    CANONICAL + "/../x",
    "a/b",
    "a\\b",
    CANONICAL + "\x00",
    "\x00" + CANONICAL,
    CANONICAL.upper(),
    CANONICAL + "\n",
    " " + CANONICAL,
    CANONICAL.replace("0", "\uff10"),  # full-width zero
    CANONICAL.replace("a", "\u0430"),  # Cyrillic a
    CANONICAL.replace("1", "\u0661"),  # Arabic-Indic one: str.isdigit() says True
    CANONICAL.replace("-", "\u2010"),  # hyphen look-alike
    "{" + CANONICAL + "}",
    "",
    ".",
    "..",
    "~",
    # Outside the grammar of application ids, or names a sync tool or Windows would misread:
    ".hidden",
    "-rf",
    "x" * 129,
    "trailing.",
    "CON",
    "lpt1.log",
    CANONICAL + ".sync-conflict-20260101-000000-ABCDEFG",
    "a b",
    "semi;colon",
]


def _tree(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}


def _calls(service: LocalSessionService, session_id: Any) -> list[Callable[[], object]]:
    event = StoredEvent(
        id=new_id(),
        session_id=session_id,
        parent_id=None,
        invocation_id="i",
        event_type="text",
        event_data='{"content":"x"}',
        created_at=utcnow(),
    )
    calls: list[Callable[[], object]] = [
        lambda: service.log_path(session_id),
        lambda: service.create_session(session_id, "/d", None),
        lambda: service.get_session(session_id),
        lambda: service.load_events(session_id),
        lambda: service.append_events(session_id, [event]),
        lambda: service.append_event(session_id, new_id(), None, "i", "text", '{"content":"x"}'),
        lambda: service.update_server_session_id(session_id, "s"),
        lambda: service.archive(session_id),
        lambda: service.unarchive(session_id),
        lambda: service.get_metadata(session_id, "k"),
        lambda: service.set_metadata(session_id, "k", "v"),
        lambda: service.verify(session_id),
    ]
    for name in ("load_conversation", "load_tree", "repair_torn_tail"):
        method = getattr(service, name, None)
        if method is not None:
            calls.append(functools.partial(method, session_id))
    return calls


def _refused_everywhere(base: Path, session_id: object) -> None:
    root = base / "store"
    service = LocalSessionService.open(root)
    before = _tree(base)
    for call in _calls(service, session_id):
        with pytest.raises(ValueError, match="session id"):
            call()
    assert _tree(base) == before, "a refused id still touched the disk"


@pytest.mark.parametrize("session_id", HOSTILE_IDS, ids=repr)
def test_hostile_ids_are_refused_before_any_path_is_built(tmp_path: Path, session_id: str) -> None:
    _refused_everywhere(tmp_path, session_id)


@pytest.mark.parametrize("session_id", [None, 5, b"01234567-89ab-7def-8123-456789abcdef", uuid.UUID(CANONICAL)])
def test_ids_that_are_not_strings_are_refused(tmp_path: Path, session_id: object) -> None:
    _refused_everywhere(tmp_path, session_id)


_UUID_SHAPE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _valid(session_id: str) -> bool:
    """The documented grammar (docs/FORMAT.md), written out again independently of the library's check."""
    stem = session_id.split(".", maxsplit=1)[0].lower()
    devices = {"con", "prn", "aux", "nul"} | {f"{d}{n}" for d in ("com", "lpt") for n in range(10)}
    return (
        1 <= len(session_id) <= 128
        and all(c.isascii() and (c.isalnum() or c in "._-") for c in session_id)
        and session_id[0] not in ".-"
        and not session_id.endswith(".")
        and ".sync-conflict-" not in session_id
        and stem not in devices
        and not (_UUID_SHAPE.fullmatch(session_id) and session_id != session_id.lower())
    )


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(session_id=st.text(max_size=40) | st.text(alphabet="0123456789abcdef-/.\x00\\ ", min_size=1, max_size=40))
def test_ids_outside_the_grammar_are_refused(session_id: str) -> None:
    if _valid(session_id):
        assert check_session_id(session_id) == session_id
        return
    with tempfile.TemporaryDirectory() as tmp:
        _refused_everywhere(Path(tmp), session_id)


# -- symlinks --------------------------------------------------------------------------


def _one_session(root: Path) -> str:
    service = LocalSessionService.open(root)
    manager = SessionManager.create_new(service, "/d", None)
    manager.persist_events([UserMessage("x")])
    service.close()
    return manager.session_id


def test_symlinked_log_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    root = tmp_path / "store"
    session_id = _one_session(root)
    log = root / "sessions" / f"{session_id}.jsonl"
    target = tmp_path / "elsewhere.jsonl"
    target.write_bytes(log.read_bytes() + b'{"k":"event","id":"x","ts":"2026-01-01T00:00:00Z","da')
    content = target.read_bytes()
    log.unlink()
    log.symlink_to(target)
    (root / "index.jsonl").unlink()
    service = LocalSessionService.open(root)
    for call in _calls(service, session_id)[1:]:
        with pytest.raises((UnsafeStorePath, FileExistsError)):
            call()
    with pytest.warns(DamagedLogWarning, match="symlink"):
        assert service.list_sessions() == []
    assert service.find_resumable("/d", None, 10**6) is None
    service.close()
    assert target.read_bytes() == content
    assert log.is_symlink()


def test_symlinked_index_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    root = tmp_path / "store"
    _one_session(root)
    target = tmp_path / "elsewhere.json"
    target.write_bytes(b"precious")
    (root / "index.jsonl").unlink()
    (root / "index.jsonl").symlink_to(target)
    service = LocalSessionService.open(root)
    # The index is a cache: a symlink there is reported and passed over, and the logs answer.
    with pytest.warns(DamagedLogWarning, match=r"index\.jsonl"):
        assert [s.directory for s in service.list_sessions()] == ["/d"]
    found = service.find_resumable("/d", None, 10**6)
    assert found is not None and found.directory == "/d"
    service.close()
    assert target.read_bytes() == b"precious"
    assert (root / "index.jsonl").is_symlink()


@pytest.mark.parametrize("folder", ["", "sessions", "locks"])
def test_symlinked_store_folders_are_refused(tmp_path: Path, folder: str) -> None:
    real = tmp_path / "real"
    real.mkdir()
    root = tmp_path / "store"
    if folder:
        root.mkdir()
        (root / folder).symlink_to(real)
    else:
        root.symlink_to(real)
    with pytest.raises(UnsafeStorePath):
        LocalSessionService.open(root)
    assert list(real.iterdir()) == []


def test_symlinked_trash_is_not_written_through(tmp_path: Path) -> None:
    """A torn tail is kept in trash/ before it is cut; a trash/ that points elsewhere must not receive it."""
    root = tmp_path / "store"
    session_id = _one_session(root)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "trash").symlink_to(outside)
    log = root / "sessions" / f"{session_id}.jsonl"
    with open(log, "ab") as f:
        f.write(b'{"k":"event","id":"torn"')
    before = log.read_bytes()
    service = LocalSessionService.open(root)
    stored = service.get_session(session_id)
    assert stored is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedLogWarning)
        resumed = SessionManager.resume(service, stored)
    with pytest.raises(OSError, match="trash"):
        resumed.manager.persist_events([*resumed.events, UserMessage("y")])
    assert list(outside.iterdir()) == []
    assert log.read_bytes() == before, "the torn tail was cut without being kept"


# -- permissions ------------------------------------------------------------------------


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o000, 0o002, 0o022, 0o077], ids=oct)
def test_files_0600_and_folders_0700_whatever_the_umask(tmp_path: Path, mask: int) -> None:
    root = tmp_path / "store"
    with _umask(mask):
        service = LocalSessionService.open(root)
        manager = SessionManager.create_new(service, "/d", None)
        manager.persist_events([UserMessage("x")])
        manager.set_metadata("k", "v" * 2000)
        with open(service.log_path(manager.session_id), "ab") as f:
            f.write(b'{"torn"')  # so that the next append fills trash/
        manager.persist_events([UserMessage("x"), UserMessage("y")])
        service.list_sessions()
        service.close()
    seen = {"dirs": 0, "files": 0}
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_dir():
            assert mode == 0o700, f"{path}: {oct(mode)}"
            seen["dirs"] += 1
        else:
            assert mode == 0o600, f"{path}: {oct(mode)}"
            seen["files"] += 1
    assert seen["dirs"] == 4 and seen["files"] >= 4, seen  # root, sessions, locks, trash; log, index, lock, trash


# -- unicode ------------------------------------------------------------------------------

_any_text = st.text(st.characters(codec="utf-8"), max_size=600)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(key=_any_text, value=_any_text, directory=_any_text, server=_any_text, content=_any_text)
def test_any_unicode_round_trips(key: str, value: str, directory: str, server: str, content: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        service = LocalSessionService.open(tmp)
        manager = SessionManager.create_new(service, directory, directory)
        manager.persist_events([UserMessage(content)])
        manager.set_metadata(key, value)
        manager.persist_server_session_id(server)
        fresh = LocalSessionService.open(tmp)
        assert fresh.get_metadata(manager.session_id, key) == value
        stored = fresh.get_session(manager.session_id)
        assert stored is not None
        assert (stored.directory, stored.git_root, stored.server_session_id) == (directory, directory, server)
        resumed = SessionManager.resume(fresh, stored)
        assert resumed.events == [UserMessage(content)]
        found = fresh.find_resumable(directory, None, 3600)
        assert found is not None and found.id == manager.session_id


@pytest.mark.parametrize("bad", ["\ud800", "a\udfffb"], ids=["lone-high", "lone-low"])
def test_text_json_cannot_carry_is_refused_with_nothing_written(tmp_path: Path, bad: str) -> None:
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/d", None)
    manager.persist_events([UserMessage("x")])
    log = service.log_path(manager.session_id)
    before = log.read_bytes()
    with pytest.raises(ValueError):
        manager.set_metadata("k", bad)
    with pytest.raises(ValueError):
        manager.set_metadata(bad, "v")
    with pytest.raises(ValueError):
        manager.persist_events([UserMessage("x"), UserMessage(bad)])
    assert log.read_bytes() == before
    manager.persist_events([UserMessage("x"), UserMessage("ok")])


@pytest.mark.parametrize("length", [1, 511, 512, 513, 5000])
def test_server_session_ids_of_any_length_round_trip(tmp_path: Path, length: int) -> None:
    """Long fact values are not kept in the index summary; the session must still report them."""
    service = LocalSessionService.open(tmp_path)
    manager = SessionManager.create_new(service, "/d", None)
    server = "s" * length
    manager.persist_server_session_id(server)
    for reader in (service, LocalSessionService.open(tmp_path)):
        stored = reader.get_session(manager.session_id)
        assert stored is not None and stored.server_session_id == server
        assert [s.server_session_id for s in reader.list_sessions()] == [server]
        found = reader.find_resumable("/d", None, 3600)
        assert found is not None and found.server_session_id == server
