"""A JSON-lines store as several AI command-line tools keep one.

Stdlib ``json``, one file per session, no lock, no index: the first line
describes the session, each later line is an event or a metadata write, and
finding or listing sessions reads every file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from benchmarks.peers.base import Persist, SessionSpec
from sessions import ConversationEvent, UnknownEvent
from sessions.events import EVENT_TYPES

__all__ = ["NaivePeer"]


def _event_line(event: ConversationEvent) -> str:
    return json.dumps({"type": event.TYPE, "timestamp": time.time(), "data": msgspec.to_builtins(event)}) + "\n"


def _typed(line: dict[str, Any]) -> Any:
    cls = EVENT_TYPES.get(line["type"])
    if cls is None:
        return UnknownEvent(line["type"], json.dumps(line["data"]))
    return msgspec.convert(line["data"], cls)


def _write(path: Path, lines: list[str], durability: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(lines))
        f.flush()
        if durability == "fsync":
            os.fsync(f.fileno())


def _summary(path: Path) -> dict[str, Any]:
    """What listing needs from one session: the whole file is read and parsed."""
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f]
    header = lines[0]
    summary = {"id": header["id"], "directory": header["directory"], "git_root": header["git_root"]}
    summary["updated_at"] = max(line["timestamp"] for line in lines)
    summary["archived"] = any(line["type"] == "archive" for line in lines)
    summary["events"] = sum(1 for line in lines if line["type"] in EVENT_TYPES)
    return summary


class _NaiveStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _summaries(self) -> list[dict[str, Any]]:
        return [_summary(self.root / name) for name in os.listdir(self.root) if name.endswith(".jsonl")]

    def find_resumable(self, directory: str, git_root: str | None, max_age_secs: float) -> str | None:
        cutoff = time.time() - max_age_secs
        best: dict[str, Any] | None = None
        for s in self._summaries():
            if s["archived"] or s["updated_at"] <= cutoff:
                continue
            if s["directory"] != directory and (git_root is None or s["git_root"] != git_root):
                continue
            if best is None or s["updated_at"] > best["updated_at"]:
                best = s
        return best["id"] if best is not None else None

    def list_sessions(self) -> int:
        return len(sorted(self._summaries(), key=lambda s: s["updated_at"], reverse=True))

    def verify_all(self) -> int:
        bad = 0
        for name in os.listdir(self.root):
            try:
                _summary(self.root / name)
            except (ValueError, KeyError, IndexError):
                bad += 1
        return bad

    def reindex(self) -> None:
        raise NotImplementedError("keeps no index: every listing reads every file")

    def close(self) -> None:
        pass


class NaivePeer:
    name = "naive-jsonl"
    description = "stdlib json, one file per session, no lock, no index (listing scans every file)"

    def persister(self, root: Path, durability: str) -> Persist:
        path = root / "session.jsonl"
        _write(path, [json.dumps({"type": "session", "id": "s", "directory": "/w", "git_root": None}) + "\n"], "flush")

        def prepare(turn: list[ConversationEvent]) -> Callable[[], None]:
            return lambda: _write(path, [_event_line(e) for e in turn], durability)

        return prepare

    def resumer(self, root: Path, events: list[ConversationEvent]) -> Callable[[], list[Any]]:
        path = root / "session.jsonl"
        _write(path, [json.dumps({"type": "session", "timestamp": time.time()}) + "\n"], "flush")
        _write(path, [_event_line(e) for e in events], "flush")

        def resume() -> list[Any]:
            with open(path, encoding="utf-8") as f:
                lines = [json.loads(line) for line in f]
            return [_typed(line) for line in lines[1:]]

        return resume

    def populate(self, root: Path, specs: list[SessionSpec]) -> None:
        for spec in specs:
            header = {"type": "session", "id": spec.id, "directory": spec.directory, "git_root": spec.git_root}
            lines = [json.dumps({**header, "timestamp": time.time()}) + "\n"]
            lines += [_event_line(e) for e in spec.events]
            lines += [
                json.dumps({"type": "metadata", "timestamp": time.time(), "key": k, "value": v}) + "\n"
                for k, v in spec.metadata.items()
            ]
            if spec.archived:
                lines.append(json.dumps({"type": "archive", "timestamp": time.time()}) + "\n")
            _write(root / f"{spec.id}.jsonl", lines, "flush")

    def open_store(self, root: Path) -> _NaiveStore:
        return _NaiveStore(root)
