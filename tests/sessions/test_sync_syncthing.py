"""End to end with two real Syncthing instances on loopback (slow: ``pytest -m syncthing``).

Both machines change the same session before either has synced; Syncthing
keeps one version under the log's name and the other as a conflict copy. Both
stores must then load the same union, and after one side merges, Syncthing
must carry the merged log over and remove the copy everywhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sessions.conflicts import conflict_copies, merge_conflict_copies, write_sync_templates
from tests.support.sync_helpers import continue_session, new_session, open_store, raw_event_ids, view

pytestmark = [
    pytest.mark.syncthing,
    pytest.mark.skipif(shutil.which("syncthing") is None, reason="needs syncthing (apt-get install syncthing)"),
]

FOLDER = "store"
TIMEOUT = 90.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Syncthing:
    """One Syncthing instance with its own home, API on loopback, no discovery, relays or upgrades."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.api_key = f"key-{home.name}"
        self.gui_port, self.listen_port = _free_port(), _free_port()
        out = subprocess.run(
            ["syncthing", "generate", f"--home={home}", "--no-default-folder"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        match = re.search(r"Device ID: ([A-Z0-9-]+)", out.stdout + out.stderr)
        assert match is not None, out.stdout + out.stderr
        self.device_id = match[1]
        self._configure()
        self.process: subprocess.Popen[bytes] | None = None

    def _configure(self) -> None:
        path = self.home / "config.xml"
        tree = ET.parse(path)
        options = tree.getroot().find("options")
        assert options is not None
        settings = {
            "listenAddress": f"tcp://127.0.0.1:{self.listen_port}",
            "globalAnnounceEnabled": "false",
            "localAnnounceEnabled": "false",
            "relaysEnabled": "false",
            "natEnabled": "false",
            "startBrowser": "false",
            "urAccepted": "-1",
            "autoUpgradeIntervalH": "0",
            "crashReportingEnabled": "false",
            "reconnectionIntervalS": "1",
        }
        for name, value in settings.items():
            element = options.find(name)
            if element is None:
                element = ET.SubElement(options, name)
            element.text = value
        tree.write(path)

    def start(self) -> None:
        log = open(self.home / "syncthing.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                "syncthing",
                "serve",
                f"--home={self.home}",
                f"--gui-address=http://127.0.0.1:{self.gui_port}",
                f"--gui-apikey={self.api_key}",
                "--no-browser",
                "--no-restart",
                "--no-upgrade",
                "--no-default-folder",
                "--skip-port-probing",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HOME": str(self.home), "STNODEFAULTFOLDER": "1", "STNOUPGRADE": "1"},
        )
        log.close()
        _wait(self._ping, f"syncthing in {self.home} to answer")

    def _ping(self) -> bool:
        try:
            return bool(self.api("GET", "/rest/system/ping").get("ping") == "pong")
        except OSError:
            return False

    def api(self, method: str, path: str, body: object = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.gui_port}{path}",
            data=data,
            method=method,
            headers={"X-API-Key": self.api_key, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw.strip() else {}

    def share(self, root: Path, other: Syncthing) -> None:
        self.api(
            "POST",
            "/rest/config/devices",
            {
                "deviceID": other.device_id,
                "name": other.home.name,
                "addresses": [f"tcp://127.0.0.1:{other.listen_port}"],
            },
        )
        self.api(
            "POST",
            "/rest/config/folders",
            {
                "id": FOLDER,
                "label": FOLDER,
                "path": str(root),
                "type": "sendreceive",
                "devices": [{"deviceID": self.device_id}, {"deviceID": other.device_id}],
                "rescanIntervalS": 3600,
                "fsWatcherEnabled": False,
                "maxConflicts": -1,
            },
        )

    def scan(self) -> None:
        self.api("POST", f"/rest/db/scan?folder={FOLDER}")

    def connected_to(self, other: Syncthing) -> bool:
        connections = self.api("GET", "/rest/system/connections")["connections"]
        return bool(connections.get(other.device_id, {}).get("connected"))

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)


def _wait(condition: Callable[[], bool], what: str, *, tick: Callable[[], None] | None = None) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if tick is not None:
            tick()
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {TIMEOUT}s waiting for {what}")


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Syncthing, Syncthing, Path, Path]]:
    roots = tmp_path / "a", tmp_path / "b"
    for root in roots:
        open_store(root)
        write_sync_templates(root)
    a, b = Syncthing(tmp_path / "st-a"), Syncthing(tmp_path / "st-b")
    try:
        a.start()
        b.start()
        a.share(roots[0], b)
        b.share(roots[1], a)
        _wait(lambda: a.connected_to(b) and b.connected_to(a), "the two instances to connect")
        yield a, b, *roots
    finally:
        a.stop()
        b.stop()


def test_two_syncthing_instances_converge_on_a_conflicting_session(
    pair: tuple[Syncthing, Syncthing, Path, Path],
) -> None:
    st_a, st_b, root_a, root_b = pair
    a, b = open_store(root_a), open_store(root_b)

    def scan_both() -> None:
        st_a.scan()
        st_b.scan()

    sid = new_session(a, "/proj", "one")
    _wait(lambda: b.get_session(sid) is not None and view(a) == view(b), "B to receive the session", tick=scan_both)

    # Both machines continue the conversation before either side has scanned.
    continue_session(a, sid, "a2", "a3")
    continue_session(b, sid, "b2")
    everything = raw_event_ids(a.log_path(sid)) | raw_event_ids(b.log_path(sid))

    def both_see_the_union() -> bool:
        return all(
            conflict_copies(store.sessions_dir) and {e.id for e in store.load_tree(sid).events} == everything
            for store in (a, b)
        )

    _wait(both_see_the_union, "a conflict copy on both sides and the union loaded", tick=scan_both)
    assert view(a) == view(b)
    assert len(a.load_tree(sid).heads) == 2

    (merged,) = merge_conflict_copies(a, dry_run=False)
    assert merged.error is None and merged.trashed

    def converged() -> bool:
        return (
            not conflict_copies(b.sessions_dir)
            and not conflict_copies(a.sessions_dir)
            and a.log_path(sid).read_bytes() == b.log_path(sid).read_bytes()
        )

    _wait(converged, "B to receive the merged log and lose the copy", tick=scan_both)
    assert view(a) == view(b)
    assert raw_event_ids(b.log_path(sid)) == everything
    # Machine-local files stayed local (.stignore): A's trash never reached B.
    assert not (root_b / "trash").exists()

    # B carries on from the merged log; A receives it with no further conflict.
    continue_session(b, sid, "b4")
    _wait(lambda: view(a) == view(b), "A to receive B's next turn", tick=scan_both)
    assert not conflict_copies(a.sessions_dir)
    assert [e.id for e in a.load_events(sid)][-2:] == [e.id for e in b.load_events(sid)][-2:]
