"""``sessions chat --resume`` without an id: pick a session from a list, on a terminal.

Arrow keys (or Ctrl-P / Ctrl-N) move, typing filters (every word must appear in the title, folder or id),
Backspace unfilters, Enter picks, Esc cancels, Ctrl-C interrupts. Drawn with plain ANSI sequences on the
alternate screen, so the terminal is as it was afterwards; reads keys with ``termios`` (no extra dependency).
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
from collections.abc import Iterator, Sequence
from typing import IO, Final

from rich.console import Console

from eventlog import utcnow
from sessions import LocalSessionService
from sessions.cli.listing import Listed, age_text, folder_text, listed

__all__ = ["Picker", "pick_session"]

MAX_SESSIONS: Final = 500
"""The most recent sessions offered; older ones are resumed by id."""
_ESC_WAIT: Final = 0.05
"""How long after an Esc byte a key sequence's next byte may take (a lone Esc is the key itself)."""


def pick_session(service: LocalSessionService, console: Console) -> str | None:
    """Let the user pick one of the most recent sessions; its id, or None if they cancelled.

    :raises KeyboardInterrupt: on Ctrl-C.
    """
    rows = listed(service, service.list_sessions()[:MAX_SESSIONS])
    if not rows:
        console.print("There is no session to resume yet.")
        return None
    return Picker(rows, color=console.color_system is not None).run(sys.stdin.fileno(), sys.stdout)


class Picker:
    """The list, the filter typed so far and the highlighted row."""

    def __init__(self, rows: Sequence[Listed], *, color: bool = True) -> None:
        self.rows = list(rows)
        self.color = color
        self.query = ""
        self.selected = 0
        now = utcnow()
        self._search = [
            " ".join((r.title, r.session.directory or "", r.short_id, r.session.id)).lower() for r in self.rows
        ]
        self._cells = [(r.cell, r.title or "(no message yet)", age_text(r.session.updated_at, now)) for r in rows]

    def matches(self) -> list[int]:
        """The rows the filter keeps, in order."""
        words = self.query.lower().split()
        return [n for n, text in enumerate(self._search) if all(w in text for w in words)]

    def key(self, key: str) -> str | None:
        """Act on one key; returns the chosen id on Enter, ``""`` on Esc, else None."""
        shown = self.matches()
        if key in ("\r", "\n"):
            return self.rows[shown[self.selected]].session.id if shown else None
        if key == "\x1b":
            return ""
        if key == "\x03":
            raise KeyboardInterrupt
        if key in ("\x1b[A", "\x1bOA", "\x10"):
            self.selected = max(0, self.selected - 1)
        elif key in ("\x1b[B", "\x1bOB", "\x0e"):
            self.selected = min(max(len(shown) - 1, 0), self.selected + 1)
        elif key in ("\x7f", "\x08"):
            self.query = self.query[:-1]
            self.selected = 0
        elif key.isprintable():
            self.query += key
            self.selected = 0
        return None

    def lines(self, width: int, height: int) -> list[str]:
        """The screen: a help line, the filter, and as many rows as fit, the highlighted one marked."""
        shown = self.matches()
        out = [
            _fit("Resume which session? Type to filter, ↑/↓ to choose, Enter to resume, Esc to cancel", width),
            _fit(f"> {self.query}", width),
        ]
        room = max(1, height - len(out))
        first = max(0, min(self.selected - room // 2, len(shown) - room))
        for n in shown[first : first + room]:
            row = self.rows[n]
            short, title, age = self._cells[n]
            tail = f"  {age:>7}  {row.session.event_count:>5} events  "
            folder = folder_text(row.session.directory, max(10, width // 4))
            title_width = max(8, width - 2 - 13 - len(tail) - len(folder))
            text = _fit(f"{short:<12} {_fit(title, title_width):<{title_width}}{tail}{folder}", width - 2)
            if n == shown[self.selected]:
                out.append(f"\x1b[7m▶ {text}\x1b[0m" if self.color else f"▶ {text}")
            else:
                out.append(f"  {text}")
        if not shown:
            out.append("  (no session matches)")
        return out

    def run(self, fd: int, out: IO[str]) -> str | None:
        """Show the list on the terminal at ``fd`` until the user picks or cancels."""
        with _keys(fd) as keys:
            out.write("\x1b[?1049h\x1b[?25l")  # the alternate screen, cursor hidden
            try:
                while True:
                    size = os.get_terminal_size(fd)
                    out.write("\x1b[H\x1b[2J" + "\r\n".join(self.lines(size.columns, size.lines - 1)))
                    out.flush()
                    chosen = self.key(next(keys))
                    if chosen is not None:
                        return chosen or None
            finally:
                out.write("\x1b[?25h\x1b[?1049l")
                out.flush()


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


@contextlib.contextmanager
def _keys(fd: int) -> Iterator[Iterator[str]]:
    """Keys typed at the terminal, one at a time (an arrow key's sequence as one), with echo and line editing off."""
    saved = termios.tcgetattr(fd)
    mode = termios.tcgetattr(fd)
    mode[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG)  # Ctrl-C arrives as a key, handled as an interrupt
    mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0
    termios.tcsetattr(fd, termios.TCSADRAIN, mode)
    try:
        yield _read_keys(fd)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _read_keys(fd: int) -> Iterator[str]:
    pending = b""
    while True:
        if not pending:
            pending = os.read(fd, 64)
            if not pending:
                raise EOFError("the terminal closed")
        if pending[:1] == b"\x1b":
            if len(pending) == 1 and select.select([fd], [], [], _ESC_WAIT)[0]:
                pending += os.read(fd, 64)
            size = 3 if pending[1:2] in (b"[", b"O") and len(pending) >= 3 else 1
            key, pending = pending[:size], pending[size:]
            yield key.decode(errors="replace")
            continue
        # One character, however many bytes it takes in UTF-8.
        for size in range(1, min(4, len(pending)) + 1):
            try:
                char = pending[:size].decode()
            except UnicodeDecodeError:
                continue
            pending = pending[size:]
            yield char
            break
        else:
            pending = pending[1:]
