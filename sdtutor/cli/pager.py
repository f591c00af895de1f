"""A small pager for the terminal: keys read raw, pages of pre-rendered lines drawn.

`less` is what people know, so the keys are less's: space and b page, j and k scroll a
line, g and G go to the top and the bottom, q quits. Documents come as sections (a
lesson's), each rendered once per terminal width to a list of lines, of which the pager
draws a window and a status line. Only the standard library is used here; the caller
renders with rich.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import termios
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

ESC_WAIT = 0.05
"""Seconds to wait after a lone ESC byte for the rest of an escape sequence."""

# The final part of CSI (`ESC [`) and SS3 (`ESC O`) sequences, parameters removed.
CSI_KEYS = {
    "A": "up",
    "B": "down",
    "C": "right",
    "D": "left",
    "H": "home",
    "F": "end",
    "1~": "home",
    "7~": "home",
    "4~": "end",
    "8~": "end",
    "5~": "pgup",
    "6~": "pgdn",
    "2~": "insert",
    "3~": "delete",
}
CONTROL_KEYS = {
    "\r": "enter",
    "\n": "enter",
    "\x03": "ctrl-c",
    "\x04": "ctrl-d",
    "\x1a": "ctrl-z",
    "\x7f": "backspace",
    "\x08": "backspace",
    "\t": "tab",
    "\x06": "pgdn",  # Ctrl-F, as in less and vi
    "\x02": "pgup",  # Ctrl-B
    "\x0e": "down",  # Ctrl-N
    "\x10": "up",  # Ctrl-P
    "\x05": "down",  # Ctrl-E
    "\x19": "up",  # Ctrl-Y
    "\x0c": "redraw",  # Ctrl-L
}


def decode(buf: bytes, more: bool) -> tuple[str | None, int]:
    """The first key in `buf` and how many bytes it took; (None, 0) when `buf` holds only
    the start of a key and `more` says more bytes may follow."""
    if not buf:
        return None, 0
    first = buf[0]
    if first == 0x1B:
        if len(buf) == 1:
            return (None, 0) if more else ("esc", 1)
        if buf[1:2] not in (b"[", b"O"):
            return "esc", 1  # Alt+key, or ESC typed before another key
        end = 2
        while end < len(buf) and not 0x40 <= buf[end] <= 0x7E:
            end += 1
        if end >= len(buf):
            return (None, 0) if more else ("esc", 1)
        body = buf[2 : end + 1].decode("ascii", "replace")
        final = body[-1]
        params = body[:-1].split(";")[0]  # drop modifiers: ESC [1;5A is still Up
        name = CSI_KEYS.get(params + final if final == "~" else final, "unknown")
        return name, end + 1
    if first < 0x80:
        char = chr(first)
        return CONTROL_KEYS.get(char, "space" if char == " " else char), 1
    length = 2 if first >> 5 == 0b110 else 3 if first >> 4 == 0b1110 else 4
    if len(buf) < length and more:
        return None, 0
    return buf[:length].decode("utf-8", "replace"), min(length, len(buf))


class Keys:
    """Keys from a terminal in raw mode, one name at a time ("pgdn", "up", "q", "G").

    Several keys may arrive in one read (a paste, a fast typist, a test); they are
    returned one by one. A resize of the terminal is returned as the key "resize".
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)

    def wake(self) -> None:
        """Make the pending `read` return "resize" (safe from a signal handler)."""
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"w")

    def close(self) -> None:
        """Close the wake-up pipe."""
        os.close(self._wake_r)
        os.close(self._wake_w)

    def read(self) -> str:
        """The next key; "eof" when the terminal is gone."""
        while True:
            key, used = decode(self.buf, more=True)
            if key is not None:
                self.buf = self.buf[used:]
                return key
            if self.buf:
                # Part of a key: the rest normally follows at once; a lone ESC does not.
                ready, _, _ = select.select([self.fd], [], [], ESC_WAIT)
                if not ready:
                    key, used = decode(self.buf, more=False)
                    self.buf = self.buf[used:]
                    return key or "unknown"
            else:
                ready, _, _ = select.select([self.fd, self._wake_r], [], [])
                if self._wake_r in ready:
                    os.read(self._wake_r, 64)
                    return "resize"
            data = os.read(self.fd, 1024)
            if not data:
                return "eof"
            self.buf += data


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """Keys arrive one at a time, unechoed, Ctrl-C and Ctrl-Z as bytes; restored after.

    Output processing stays on, so a newline still returns the carriage. Typed-ahead
    input is kept (TCSADRAIN, not TCSAFLUSH).
    """
    old = termios.tcgetattr(fd)
    new = termios.tcgetattr(fd)
    new[0] &= ~(termios.IXON | termios.ICRNL)
    new[3] &= ~(termios.ECHO | termios.ICANON | termios.ISIG | termios.IEXTEN)
    new[6][termios.VMIN] = 1
    new[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSADRAIN, new)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)


def terminal_size() -> tuple[int, int]:
    """(columns, rows) of the terminal on stdout, at least 20 x 5."""
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
        columns, rows = size.columns, size.lines
    except OSError:
        columns, rows = 80, 24
    return max(columns, 20), max(rows, 5)


def ask_yes_no(question: str, default: bool = True) -> bool:
    """Ask a yes/no question answered by one key: y, n, or Enter for the default.

    Esc and q answer no; Ctrl-C interrupts (KeyboardInterrupt)."""
    hint = "[Y/n]" if default else "[y/N]"
    fd = sys.stdin.fileno()
    keys = Keys(fd)
    try:
        with raw_mode(fd):  # before the prompt, so a quick answer is not echoed twice
            _write(f"{question} {hint} ")
            while True:
                key = keys.read()
                if key in ("y", "Y"):
                    answer = True
                elif key in ("n", "N", "q", "esc"):
                    answer = False
                elif key == "enter":
                    answer = default
                elif key in ("ctrl-c", "eof"):
                    _write("\r\n")
                    raise KeyboardInterrupt
                else:
                    continue
                break
    finally:
        keys.close()
    _write(("yes" if answer else "no") + "\r\n")
    return answer


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


# ------------------------------------------------------------------------ the pager


@dataclass
class Document:
    """What the pager shows: `count` sections, each rendered for a width."""

    count: int
    render: Callable[[int, int], list[str]]
    """Section index and width -> the section's lines (ANSI styled, none wider)."""
    title: Callable[[int], str]
    """Section index -> its heading, for the status line."""
    on_move: Callable[[int, int], None] = lambda section, line: None
    """Called with the new (section, top line) whenever the learner moves."""
    _cache: dict[tuple[int, int], list[str]] = field(default_factory=dict)

    def lines(self, index: int, width: int) -> list[str]:
        """A section's lines at this width, rendered once."""
        key = (index, width)
        if key not in self._cache:
            lines = self.render(index, width)
            while lines and not _visible(lines[-1]).strip():
                lines.pop()
            self._cache[key] = lines
        return self._cache[key]


@dataclass
class Outcome:
    """How reading ended: "finished" (read past the end) or "quit", and where."""

    how: str
    section: int
    line: int
    furthest: int
    """The furthest section reached (0-based)."""


HELP = [
    "Keys",
    "",
    "  space  PgDn  f      next page; at the end of a section, the next section",
    "  b      PgUp         previous page; at the top, the previous section",
    "  Enter  j  Down      one line down (Enter at the end: next section)",
    "  k      Up           one line up",
    "  d  u                half a page down / up",
    "  g      Home         top of the section",
    "  G      End          bottom of the section",
    "  n  p                next / previous section",
    "  1 … 9               section by number",
    "  q  Esc  Ctrl-C      quit; your place is saved",
    "",
    "Press any key to go back.",
]


class Pager:
    """Shows a Document a screen at a time; `run` returns when the reader is done."""

    def __init__(self, doc: Document, section: int = 0, line: int = 0, note: str = "") -> None:
        self.doc = doc
        self.index = min(max(section, 0), doc.count - 1)
        self.top = max(line, 0)
        self.furthest = self.index
        self.note = note
        self.width, self.height = terminal_size()
        self.show_help = False

    # -- geometry

    @property
    def page(self) -> int:
        """Lines of text on one screen (the last row is the status line)."""
        return self.height - 1

    def lines(self) -> list[str]:
        """The current section's lines at the current width."""
        return self.doc.lines(self.index, self.width)

    def max_top(self) -> int:
        """The top line that shows the section's last line at the bottom of the screen."""
        return max(0, len(self.lines()) - self.page)

    def at_end(self) -> bool:
        """Whether the bottom of the section is on screen."""
        return self.top >= self.max_top()

    def _resize(self) -> None:
        width, height = terminal_size()
        if (width, height) == (self.width, self.height):
            return
        # Keep the same place in the text: the same fraction of the way down.
        before = max(len(self.lines()), 1)
        fraction = self.top / before
        self.width, self.height = width, height
        self.top = round(fraction * len(self.lines()))

    def _clamp(self) -> None:
        self.top = min(max(self.top, 0), self.max_top())

    # -- moving

    def _go(self, index: int, at_end: bool = False) -> None:
        self.index = index
        self.furthest = max(self.furthest, index)
        self.top = self.max_top() if at_end else 0

    def handle(self, key: str) -> str | None:
        """Apply one key; "quit" or "finished" when reading is over."""
        last = self.index == self.doc.count - 1
        if self.show_help:
            self.show_help = False
            return "quit" if key in ("ctrl-c", "eof") else None
        if key in ("q", "Q", "esc", "ctrl-c", "ctrl-d", "eof"):
            return "quit"
        if key in ("space", "pgdn", "f", "enter"):
            if not self.at_end():
                step = 1 if key == "enter" else self.page
                self.top = min(self.top + step, self.max_top())
            elif last:
                return "finished"
            else:
                self._go(self.index + 1)
        elif key in ("j", "down"):
            if self.at_end():
                self.note = "End of the section: space for the next one."
            self.top += 1
        elif key in ("b", "pgup"):
            if self.top > 0:
                self.top = max(self.top - self.page, 0)
            elif self.index > 0:
                self._go(self.index - 1, at_end=True)
            else:
                self.note = "This is the start of the lesson."
        elif key in ("k", "up"):
            self.top -= 1
        elif key == "d":
            self.top += self.page // 2
        elif key == "u":
            self.top -= self.page // 2
        elif key in ("g", "home", "<"):
            self.top = 0
        elif key in ("G", "end", ">"):
            self.top = self.max_top()
        elif key == "n":
            if last:
                self.note = "This is the last section: space at its end finishes the lesson."
            else:
                self._go(self.index + 1)
        elif key in ("p", "N"):
            if self.index:
                self._go(self.index - 1)
            else:
                self.note = "This is the first section."
        elif len(key) == 1 and key.isdigit() and key != "0":
            number = int(key)
            if number <= self.doc.count:
                self._go(number - 1)
            else:
                self.note = f"There are {self.doc.count} sections."
        elif key in ("?", "h", "H"):
            self.show_help = True
        self._clamp()
        return None

    # -- drawing

    def status(self) -> str:
        """The status line: where the reader is, and the keys (or a note)."""
        total = len(self.lines())
        first = min(self.top + 1, total)
        bottom = min(self.top + self.page, total)
        pct = 100 if total == 0 else round(100 * bottom / total)
        number = f"section {self.index + 1} of {self.doc.count}"
        where = f" {self.doc.title(self.index)} · {number} · lines {first}–{bottom} of {total}"
        where += f" · {pct}%"
        short = f" {self.index + 1}/{self.doc.count} · {pct}%"
        if self.show_help:
            options = [(where, "any key: back"), (short, "any key: back")]
        elif self.note:
            options = [(where, self.note), (short, self.note)]
        elif self.at_end():
            last = self.index == self.doc.count - 1
            step = "space: finish the lesson" if last else "space: next section"
            brief = "space: finish" if last else "space: next"
            options = [
                (where, step + " · b back · ? keys · q quit"),
                (where, step),
                (where, brief),
                (short, step),
            ]
        else:
            options = [
                (where, "space/b page · j/k line · n/p section · ? keys · q quit"),
                (where, "space/b page · ? keys · q quit"),
                (where, "? keys · q quit"),
            ]
        return _fit(options, where, self.width)

    def frame(self) -> str:
        """The whole screen, drawn from the top-left corner."""
        if self.show_help:
            window = [line[: self.width] for line in HELP][: self.page]
        else:
            window = self.lines()[self.top : self.top + self.page]
        rows = [f"\x1b[2K{line}\x1b[0m" for line in window]
        rows += ["\x1b[2K"] * (self.page - len(window))
        return "\x1b[H" + "\r\n".join(rows) + "\r\n\x1b[2K\x1b[7m" + self.status() + "\x1b[0m"

    def run(self) -> Outcome:
        """Show the document until the reader quits or reads past the end."""
        fd = sys.stdin.fileno()
        keys = Keys(fd)
        previous = signal.signal(signal.SIGWINCH, lambda *_: keys.wake())
        term = signal.signal(signal.SIGTERM, _exit_on_signal)
        how = "quit"
        try:
            with raw_mode(fd):
                _write(ENTER_SCREEN)
                try:
                    self._clamp()
                    self.doc.on_move(self.index, self.top)
                    while True:
                        _write(self.frame())
                        self.note = ""
                        key = keys.read()
                        self._resize()
                        if key == "ctrl-z":
                            self._suspend(fd)
                            continue
                        before = (self.index, self.top)
                        done = self.handle(key)
                        if done:
                            how = done
                            break
                        if (self.index, self.top) != before:
                            self.doc.on_move(self.index, self.top)
                finally:
                    _write(LEAVE_SCREEN)
        finally:
            signal.signal(signal.SIGWINCH, previous)
            signal.signal(signal.SIGTERM, term)
            keys.close()
        return Outcome(how, self.index, self.top, self.furthest)

    def _suspend(self, fd: int) -> None:
        """Ctrl-Z: give the terminal back, stop, and take it again on `fg`."""
        _write(LEAVE_SCREEN)
        saved = termios.tcgetattr(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, _cooked(saved))
        os.kill(os.getpid(), signal.SIGTSTP)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        _write(ENTER_SCREEN)
        self._resize()
        self._clamp()


ENTER_SCREEN = "\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J"
"""The alternate screen (the shell's screen comes back on quit), cursor hidden."""
LEAVE_SCREEN = "\x1b[?25h\x1b[?1049l"


def _cooked(attrs: list[Any]) -> list[Any]:
    attrs = [*attrs[:6], list(attrs[6])]
    attrs[0] |= termios.ICRNL | termios.IXON
    attrs[3] |= termios.ECHO | termios.ICANON | termios.ISIG | termios.IEXTEN
    return attrs


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _visible(line: str) -> str:
    """The text of a line without its escape sequences."""
    import re

    return re.sub(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)", "", line)


def _fit(options: list[tuple[str, str]], fallback: str, width: int) -> str:
    """The first (left, right) pair that fits in `width` cells, as one line of exactly
    that width; else `fallback` cut to fit."""
    from rich.cells import cell_len, set_cell_size

    for left, right in options:
        gap = width - cell_len(left) - cell_len(right) - 1
        if gap >= 2:
            return left + " " * gap + right + " "
    return set_cell_size(fallback, width)


__all__ = ["Document", "Keys", "Outcome", "Pager", "ask_yes_no", "decode", "raw_mode"]
