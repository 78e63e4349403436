"""A small terminal chat that uses the library the way an assistant application does.

It resumes the last session of the current directory or git root, records each
turn (user message, answer, tool calls and results), and after every turn
persists the new events, a server session id and two metadata values. The
answers come from :class:`OfflineResponder`: deterministic, no network, no model.
"""

from __future__ import annotations

import json
import math
import shlex
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

from rich.console import Console

from eventlog import new_id, utcnow
from sessions import LocalSessionService, SessionManager, shortid
from sessions._mapping import placed
from sessions.cli.render import event_text, time_ago
from sessions.errors import SessionBusy, SessionConflict, SessionNotFound, SessionsError
from sessions.events import (
    ConversationEvent,
    EventBase,
    OutOfBandOutput,
    SkillInvocation,
    SystemContext,
    Text,
    ToolCall,
    ToolResult,
    UserMessage,
)
from sessions.hold import SessionHold, held_elsewhere, held_sessions, hold_session
from sessions.models import StoredSession

__all__ = [
    "DEFAULT_MAX_AGE_MINUTES",
    "EDIT_PERMISSIONS_KEY",
    "FILE_READS_KEY",
    "Chat",
    "OfflineResponder",
    "find_git_root",
]

AnyEvent = EventBase

DEFAULT_MAX_AGE_MINUTES: Final = 60.0
FILE_READS_KEY: Final = "file_read_tracker"
"""Metadata key: the files the assistant has read, as JSON text (as the reference keeps it)."""
EDIT_PERMISSIONS_KEY: Final = "edit_permissions"
"""Metadata key: the commands the user let the assistant run, as JSON text."""
RECENT_TURNS: Final = 3
HELP: Final = (
    "Type a message, or: run CMD (the assistant runs ls, pwd, cat FILE or echo as a tool), "
    "!CMD (you run it yourself), /skill summarize, /history, /new (archive this session and start afresh), "
    "/quit (or Ctrl-D)."
)


def find_git_root(directory: Path) -> Path | None:
    """The nearest folder at or above ``directory`` holding ``.git`` (a folder, or a file in a worktree)."""
    for folder in (directory, *directory.parents):
        if (folder / ".git").exists():
            return folder
    return None


class OfflineResponder:
    """Answers without a network or a model, the same way every time, exercising every event type.

    Its tools only read: ``ls``, ``pwd``, ``cat FILE`` (first lines) and ``echo``.
    """

    MAX_LINES: Final = 20
    MAX_LINE_CHARS: Final = 2000

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files_read: dict[str, dict[str, object]] = {}
        self.allowed_commands: list[str] = []

    def reply(self, conversation: Sequence[AnyEvent], line: str) -> list[ConversationEvent]:
        """The events that answer the user's ``line`` (already the last event of ``conversation``)."""
        if line.startswith("run "):
            command = line[4:].strip()
            call_id = f"toolu_{1 + sum(isinstance(e, ToolCall) for e in conversation):04d}"
            content, is_error = self.run_tool(command)
            lines = content.count("\n") + (1 if content and not content.endswith("\n") else 0)
            summary = f"`{command}` failed: {content}" if is_error else f"`{command}` returned {lines} line(s)."
            return [
                ToolCall(call_id, "shell", {"command": command}),
                ToolResult(call_id, content, is_error, content_length=len(content)),
                Text(summary),
            ]
        said = sum(isinstance(e, UserMessage) for e in conversation)
        if line.lower().rstrip("!. ") in {"hello", "hi", "hey"}:
            return [
                Text(
                    "Hello! I am an offline demo assistant: nothing you type leaves this machine. "
                    "Try `run ls`, `run cat README.md`, `!pwd`, `/skill summarize`, `/history` or `/new`."
                )
            ]
        return [
            Text(
                f"Noted: that is message {said} from you in this session. Quit and start me again in this "
                "directory to see the session resume; /new starts afresh."
            )
        ]

    def run_tool(self, command: str) -> tuple[str, bool]:
        """Run one of the read-only demo tools; returns ``(output, is_error)``."""
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            return f"cannot parse the command: {exc}", True
        if not argv:
            return "no command given", True
        name, args = argv[0], argv[1:]
        if name not in {"ls", "pwd", "cat", "echo"}:
            return f"`{name}` is not available in this offline demo (it knows ls, pwd, cat FILE and echo)", True
        if name not in self.allowed_commands:
            self.allowed_commands.append(name)
        if name == "pwd":
            return f"{self.directory}\n", False
        if name == "echo":
            return " ".join(args) + "\n", False
        if name == "ls":
            target = self.directory / (args[0] if args else ".")
            try:
                names = sorted(p.name + ("/" if p.is_dir() else "") for p in target.iterdir())
            except OSError as exc:
                return f"ls: {target}: {exc.strerror}", True
            more = [f"... and {len(names) - 50} more"] if len(names) > 50 else []
            return "".join(f"{n}\n" for n in [*names[:50], *more]), False
        if not args:
            return "cat: which file?", True
        path = self.directory / args[0]
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                head = [f.readline(self.MAX_LINE_CHARS) for _ in range(self.MAX_LINES)]
        except OSError as exc:
            return f"cat: {args[0]}: {exc.strerror}", True
        text = "".join(head)
        self.files_read[str(path.resolve())] = {"read_at": utcnow().isoformat(), "lines": text.count("\n")}
        return text, False

    def skill(self, conversation: Sequence[AnyEvent], name: str, arguments: str | None) -> SkillInvocation:
        """A skill invocation; ``summarize`` counts what the session holds."""
        if name == "summarize":
            counts: dict[str, int] = {}
            for event in conversation:
                kind = type(event).__name__
                counts[kind] = counts.get(kind, 0) + 1
            content = "This session holds " + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing")
        else:
            content = f"the offline demo has no skill named {name!r} (try /skill summarize)"
        return SkillInvocation(name=name, arguments=arguments, content=content)

    def tracker_json(self) -> str:
        return json.dumps({"files": self.files_read}, sort_keys=True)

    def permissions_json(self) -> str:
        return json.dumps({"allowed_commands": self.allowed_commands})

    def load_metadata(self, files_read: str | None, permissions: str | None) -> None:
        """Take the tracker and permission cache back from a resumed session (bad JSON is ignored)."""
        try:
            files = json.loads(files_read)["files"] if files_read else {}
            allowed = json.loads(permissions)["allowed_commands"] if permissions else []
        except (ValueError, KeyError, TypeError):
            return
        if isinstance(files, dict) and isinstance(allowed, list):
            self.files_read = files
            self.allowed_commands = [str(x) for x in allowed]


class Chat:
    """One chat run: resume or start a session, then take lines until ``/quit`` or end of input."""

    def __init__(
        self,
        service: LocalSessionService,
        console: Console,
        *,
        directory: Path,
        max_age_minutes: float = DEFAULT_MAX_AGE_MINUTES,
        echo_input: bool = False,
        command: str = "sessions",
        resume_id: str | None = None,
        continue_latest: bool = False,
    ) -> None:
        self.service = service
        self.console = console
        self.directory = directory
        self.git_root = find_git_root(directory)
        self.max_age_minutes = max_age_minutes
        self.echo_input = echo_input
        self.command = command
        """How the user can run the ``sessions`` command, for the hints the chat prints."""
        self.responder = OfflineResponder(directory)
        self.manager = SessionManager.create_new(service, str(directory), self._git_root_str)
        self.events: list[AnyEvent] = []
        self.server_session_id = f"offline-{new_id()}"
        self.resume_id = resume_id
        """A session the user chose (``--resume ID``): resumed whatever its age or folder."""
        self.continue_latest = continue_latest
        """``--continue``: this folder's latest session, whatever its age."""
        self.hold: SessionHold | None = None
        self.saved = True
        """False while a turn is in memory that the disk refused (the exit code says so)."""

    @property
    def _git_root_str(self) -> str | None:
        return str(self.git_root) if self.git_root is not None else None

    def start(self) -> None:
        """Resume the session asked for (``--resume``), or the newest of this directory or git root that is recent
        enough (any age with ``--continue``) and not open in another process; else prepare a new one.

        :raises SessionBusy: if the session asked for is open in another process.
        """
        self.console.print(f"Session store: {self.service.root}", style="dim")
        here, git_root = str(self.directory), self._git_root_str
        if self.resume_id is not None:
            stored = self.service.get_session(self.resume_id)
            if stored is None:
                raise SessionNotFound(f"no session {self.resume_id} in {self.service.root}")
            pid = held_elsewhere(self.service.locks_dir, stored.id)
            if pid is not None:
                raise SessionBusy(
                    f"session {stored.id} is open in another chat ({f'process {pid}' if pid else 'another process'});"
                    " finish it there first"
                )
        else:
            max_age = math.inf if self.continue_latest else self.max_age_minutes * 60
            stored = self.service.find_resumable(here, git_root, max_age_secs=max_age)
            self._say_what_is_open_elsewhere(stored)
        if stored is not None and not self._take_hold(stored.id):
            stored = None
        if stored is None:
            self._take_hold(self.manager.session_id)
            self.console.print(f"New session in {self.directory} — type /help for commands, /quit to leave")
            if self.resume_id is None and not self.continue_latest:
                older = self.service.find_resumable(here, git_root, max_age_secs=math.inf)
                if older is not None:
                    self.console.print(
                        f"(an older session of this folder was last active {time_ago(older.updated_at)}: "
                        f"`{self.command} chat --continue` resumes it, `{self.command} chat --resume` lists them)",
                        style="dim",
                    )
            return
        resumed = SessionManager.resume(self.service, stored)
        self.manager = resumed.manager
        self.events = list(resumed.events)
        if resumed.server_session_id:
            self.server_session_id = resumed.server_session_id
        self.responder.load_metadata(
            self.manager.get_metadata(FILE_READS_KEY), self.manager.get_metadata(EDIT_PERMISSIONS_KEY)
        )
        self.console.print(
            f"Continuing previous session (last active {time_ago(stored.updated_at)}) — "
            "type /new to start a new session",
            style="bold",
        )
        self._show_recent()

    def _say_what_is_open_elsewhere(self, chosen: StoredSession | None) -> None:
        """Say so when a newer session of this folder was passed by because another process holds it."""
        for session_id, pid in held_sessions(self.service).items():
            other = self.service.get_session(session_id)
            if other is None or other.archived_at is not None:
                continue
            if not placed(other, str(self.directory), self._git_root_str):
                continue
            if chosen is not None and (other.updated_at, other.id) < (chosen.updated_at, chosen.id):
                continue
            by = f"process {pid}" if pid else "another process"
            self.console.print(
                f"(session {other.id} of this folder is open in another chat, {by}: "
                "one conversation has one writer, so this chat does not continue it)",
                style="yellow",
            )

    def _take_hold(self, session_id: str) -> bool:
        """Hold the session for this process (see :mod:`sessions.hold`); False if another process got there first."""
        if self.hold is not None:
            self.hold.release()
            self.hold = None
        try:
            self.hold = hold_session(self.service, session_id)
        except SessionBusy as exc:
            self.console.print(f"({exc}; starting a new session instead)", style="yellow")
            return False
        except OSError:
            pass  # a read-only store: nothing can be written to it anyway, and the chat says so at the first turn
        return True

    def _show_recent(self) -> None:
        starts = [i for i, e in enumerate(self.events) if isinstance(e, UserMessage)]
        first = starts[-RECENT_TURNS] if len(starts) >= RECENT_TURNS else 0
        if first:
            self.console.print(f"({first} earlier events; /history shows them all)", style="dim")
        for event in self.events[first:]:
            self.console.print(event_text(event))

    def run(self, lines: Iterator[str]) -> bool:
        """Take lines until ``/quit`` or the end of ``lines``; every turn is saved before the next is read.

        :returns: whether every turn is saved (see :meth:`finish`).
        """
        self.start()
        for raw in lines:
            line = raw.strip()
            if self.echo_input:
                self.console.print(f"you> {line}", style="cyan")
            if line and not self.handle(line):
                break
        return self.finish()

    def handle(self, line: str) -> bool:
        """Act on one line; False when the user asked to quit."""
        command, _, rest = line.partition(" ")
        if command in {"/quit", "/exit"}:
            return False
        if command == "/help":
            self.console.print(HELP)
        elif command == "/history":
            if not self.events:
                self.console.print("(nothing yet)", style="dim")
            for event in self.events:
                self.console.print(event_text(event))
        elif command == "/new":
            self.new_session()
        elif command == "/skill":
            name, _, arguments = rest.strip().partition(" ")
            self.turn([self.responder.skill(self.events, name or "summarize", arguments.strip() or None)])
        elif line.startswith("!"):
            output, _ = self.responder.run_tool(line[1:].strip())
            self.turn([OutOfBandOutput(name="shell", command=line[1:].strip(), content=output)])
        elif command.startswith("/"):
            self.console.print(f"unknown command {command}; {HELP}", style="red")
        else:
            message = UserMessage(line)
            self.turn([message, *self.responder.reply([*self.events, message], line)])
        return True

    def turn(self, new_events: list[ConversationEvent]) -> None:
        """Add a turn's events, show the answer, and persist everything not yet saved."""
        if not self.events:
            git = f"git root: {self.git_root}" if self.git_root else "no git repository"
            new_events.insert(0, SystemContext(f"working directory: {self.directory}; {git}"))
        self.events.extend(new_events)
        for event in new_events:
            if not isinstance(event, UserMessage | SystemContext):
                self.console.print(event_text(event))
        self.persist()

    def persist(self) -> None:
        """Persist as the reference application does after each turn: events, server id, two metadata values."""
        try:
            try:
                self.manager.persist_events(self.events)
            except SessionConflict:
                self._rebase_after_conflict()
            self.manager.persist_server_session_id(self.server_session_id)
            self.manager.set_metadata(FILE_READS_KEY, self.responder.tracker_json())
            self.manager.set_metadata(EDIT_PERMISSIONS_KEY, self.responder.permissions_json())
            self.saved = True
        except SessionsError as exc:
            # The turn stays in memory; the next turn persists it along with its own events.
            self.saved = False
            self.console.print(f"could not save this turn yet: {exc}", style="red")

    def _rebase_after_conflict(self) -> None:
        """Another process appended to this session: reload it and put our unsaved events after its own."""
        unsaved = self.events[self.manager.persisted_count :]
        stored = self.service.get_session(self.manager.session_id)
        if stored is None:
            raise SessionConflict(f"session {self.manager.session_id} disappeared while this chat was writing")
        resumed = SessionManager.resume(self.service, stored)
        theirs = resumed.events[self.manager.persisted_count :]
        self.console.print(
            f"(another chat added {len(theirs)} event(s) to this session; yours follow them)", style="yellow"
        )
        self.manager = resumed.manager
        self.events = [*resumed.events, *unsaved]
        self.manager.persist_events(self.events)

    def new_session(self) -> None:
        """Archive the current session (if it was ever saved) and start a fresh, unsaved one, as ``/new`` does."""
        if len(self.events) > self.manager.persisted_count:
            self.persist()
        old = self.manager.session_id
        had_events = self.manager.persisted_count > 0
        self.manager.archive_and_reset()
        self.events = []
        self.server_session_id = f"offline-{new_id()}"
        self.responder = OfflineResponder(self.directory)
        self._take_hold(self.manager.session_id)
        if had_events:
            self.console.print(f"Archived session {old}; started a new one.")
        else:
            self.console.print("Started a new session.")

    def finish(self) -> bool:
        """Save what an earlier failure left unsaved, say where the conversation is, and let the session go.

        :returns: whether every turn is saved.
        """
        if len(self.events) > self.manager.persisted_count:
            self.persist()
        stored = self.service.get_session(self.manager.session_id)
        if stored is not None:
            short = shortid.short_ids(self.service.session_ids()).get(stored.id, stored.id)
            state = "Saved" if self.saved else "The last turn could NOT be saved; the disk has"
            self.console.print(
                f"{state} session {stored.id} ({stored.event_count} events). "
                f"`{self.command} show {short}` shows it again.",
                style="dim" if self.saved else "red",
            )
        elif not self.saved:
            self.console.print("The conversation could NOT be saved.", style="red")
        if self.hold is not None:
            self.hold.release()
            self.hold = None
        self.service.close()
        return self.saved


def input_lines(prompt: str) -> Iterator[str]:
    """Lines typed at a terminal; ends at Ctrl-D."""
    while True:
        try:
            yield input(prompt)
        except EOFError:
            print()
            return


def stream_lines(stream: Iterator[str] | None = None) -> Iterator[str]:
    """Lines of a script or a pipe, read one at a time so a pipe can feed the chat as it goes."""
    source = stream if stream is not None else iter(sys.stdin.readline, "")
    for line in source:
        yield line.rstrip("\n")
