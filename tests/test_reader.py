"""The lesson reader (`sdtutor learn`) as a learner meets it: the real command in a
pseudo-terminal, keys sent as a terminal sends them, the screen read back."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sdtutor.cli.pager import decode
from sdtutor.cli.render import lesson_page, to_lines
from sdtutor.content.course import Course
from sdtutor.topics import resolve
from tests.conftest import sdtutor

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
PGDN, PGUP, HOME, END = "\x1b[6~", "\x1b[5~", "\x1b[H", "\x1b[F"
LESSON = Course().lesson(resolve("caching"))
HEADINGS = [s.heading for s in LESSON.sections]
HOW = HEADINGS.index("How it works")


def expected_lines(index: int, width: int) -> list[str]:
    """A section's lines as the reader renders them, without styles."""
    lines = [ANSI.sub("", line).rstrip() for line in to_lines(lesson_page(LESSON, index), width)]
    while lines and not lines[-1]:
        lines.pop()
    return lines


class Terminal:
    """`sdtutor ARGS` running in a pty of COLUMNS x LINES."""

    def __init__(self, home: Path, *args: str, columns: int = 80, rows: int = 24) -> None:
        self.master, slave = os.openpty()
        self.resize(columns, rows, fd=slave)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SDTUTOR_")}
        env.update(
            SDTUTOR_HOME=str(home),
            COLUMNS=str(columns),
            LINES=str(rows),
            TERM="xterm-256color",
            NO_COLOR="1",
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sdtutor", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.raw = b""

    def resize(self, columns: int, rows: int, fd: int | None = None) -> None:
        """Set the pty's window size."""
        size = struct.pack("HHHH", rows, columns, 0, 0)
        fcntl.ioctl(self.master if fd is None else fd, termios.TIOCSWINSZ, size)

    def _pump(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # the child closed the pty
            return False
        self.raw += data
        return bool(data)

    @property
    def text(self) -> str:
        """Everything written so far, decoded."""
        return self.raw.decode("utf-8", "replace")

    def screen(self) -> list[str]:
        """The rows of the last whole frame the reader drew (text only), status last."""
        frames = [f for f in self.text.split("\x1b[H") if "\x1b[7m" in f]
        if not frames or "\x1b[0m" not in frames[-1].rsplit("\x1b[7m", 1)[1]:
            return []
        return [ANSI.sub("", row).rstrip() for row in frames[-1].split("\r\n")]

    def status(self) -> str:
        """The status line of the last frame."""
        rows = self.screen()
        return rows[-1] if rows else ""

    def wait(self, what: Callable[[], bool], timeout: float = 30) -> None:
        """Read output until `what()` holds."""
        end = time.monotonic() + timeout
        while not what():
            if time.monotonic() > end:
                raise AssertionError(
                    f"timed out; status {self.status()!r}; tail {self.text[-600:]!r}"
                )
            self._pump(0.2)

    def wait_status(self, fragment: str) -> list[str]:
        """Wait for a frame whose status line has `fragment`; its rows."""
        self.wait(lambda: fragment in self.status())
        return self.screen()

    def send(self, keys: str) -> None:
        """Type `keys` (all in one write)."""
        os.write(self.master, keys.encode())

    def finish(self, timeout: float = 30) -> int:
        """Wait for the command to exit; its exit code."""
        end = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < end:
            self._pump(0.1)
        while self._pump(0.05):
            pass
        code = self.proc.wait(timeout=5)
        os.close(self.master)
        return code

    def kill(self) -> None:
        """Stop the command if it is still running."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def term(tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    started: list[Terminal] = []

    def start(*args: str, columns: int = 80, rows: int = 24) -> Terminal:
        t = Terminal(tmp_path / "home", *args, columns=columns, rows=rows)
        started.append(t)
        return t

    yield start
    for t in started:
        t.kill()


def _position(home: Path) -> tuple[int, int] | None:
    code = (
        "from sdtutor.progress.store import ProgressStore\n"
        "with ProgressStore() as s: print(s.position('caching'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "SDTUTOR_HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return None if out == "None" else tuple(int(x) for x in out.strip("()").split(","))  # type: ignore[return-value]


def test_keys_are_decoded_when_several_arrive_together() -> None:
    buf = b" \x1b[6~jk\x1b[5~\x1bOH\x1b[4~\x1b[1;5AG\r\x03\xc3\xa9"
    keys = []
    while buf:
        key, used = decode(buf, more=False)
        keys.append(key)
        buf = buf[used:]
    assert keys == [
        "space",
        "pgdn",
        "j",
        "k",
        "pgup",
        "home",
        "end",
        "up",
        "G",
        "enter",
        "ctrl-c",
        "é",
    ]
    # The start of a sequence waits for the rest; a lone ESC is Esc once nothing follows.
    assert decode(b"\x1b[6", more=True) == (None, 0)
    assert decode(b"\x1b", more=True) == (None, 0)
    assert decode(b"\x1b", more=False) == ("esc", 1)


def test_a_long_section_opens_at_its_heading_and_pages_like_less(
    term: Callable[..., Terminal],
) -> None:
    lines = expected_lines(HOW, 80)
    total = len(lines)
    assert total > 100, "How it works is the long section this test is about"
    t = term("learn", "caching", "3")
    screen = t.wait_status(
        f"How it works · section {HOW + 1} of {len(HEADINGS)} · lines 1–23 of {total}"
    )
    assert len(screen) == 24
    assert screen[0].startswith("How it works"), screen[0]
    assert screen[:23] == lines[:23]

    t.send(PGDN)
    screen = t.wait_status(f"lines 24–46 of {total}")
    assert screen[:23] == lines[23:46]
    # Several keys in one write: space, PgDn, then a line down with j and one with Down.
    t.send(" " + PGDN + "j\x1b[B")
    screen = t.wait_status(f"lines 72–94 of {total}")
    assert screen[:23] == lines[71:94]
    t.send("k")
    t.wait_status(f"lines 71–93 of {total}")

    t.send("G")
    screen = t.wait_status(f"lines {total - 22}–{total} of {total} · 100%")
    assert screen[:23] == lines[-23:]
    assert "space: next" in screen[-1]
    t.send("g")
    screen = t.wait_status(f"How it works · section {HOW + 1} of {len(HEADINGS)} · lines 1–23")
    assert screen[0].startswith("How it works")
    t.send(END)
    t.wait_status(f"of {total} · 100%")
    t.send(HOME)
    t.wait_status(f"lines 1–23 of {total}")

    # At the top, PgUp goes back to the end of the previous section.
    t.send(PGUP)
    before = expected_lines(HOW - 1, 80)
    screen = t.wait_status(f"{HEADINGS[HOW - 1]} · section {HOW} of")
    assert screen[:23] == before[-23:]
    # n and p move a section; at the end of one, space opens the next at its heading.
    t.send("n")
    t.wait_status(f"How it works · section {HOW + 1}")
    t.send("n")
    screen = t.wait_status(f"{HEADINGS[HOW + 1]} · section {HOW + 2} of")
    assert screen[0].startswith(HEADINGS[HOW + 1])
    t.send("p")
    t.wait_status(f"How it works · section {HOW + 1} of {len(HEADINGS)} · lines 1–23")
    t.send("q")
    assert t.finish() == 0


def test_quit_saves_the_place_and_learn_resumes_there(
    term: Callable[..., Terminal], tmp_path: Path
) -> None:
    t = term("learn", "caching")
    t.wait_status("section 1 of")
    t.send(str(HOW + 1))  # a digit opens that section
    t.wait_status(f"How it works · section {HOW + 1} of")
    t.send("  jj")
    t.wait_status("lines 49–71 of")
    t.send("q")
    assert t.finish() == 0
    assert f"sdtutor learn caching resumes at section {HOW + 1}" in ANSI.sub("", t.text)
    assert _position(tmp_path / "home") == (HOW, 48)

    again = term("learn", "caching")
    screen = again.wait_status(f"How it works · section {HOW + 1} of")
    assert "lines 49–71 of" in screen[-1]
    assert screen[:23] == expected_lines(HOW, 80)[48:71]
    again.send("j\x03")  # Ctrl-C quits too, and saves the place
    assert again.finish() == 0
    assert _position(tmp_path / "home") == (HOW, 49)


def test_resize_renders_again_at_the_new_width(term: Callable[..., Terminal]) -> None:
    t = term("learn", "caching", "how it")
    t.wait_status("lines 1–23 of")
    t.resize(120, 40)
    t.proc.send_signal(signal.SIGWINCH)
    wide = expected_lines(HOW, 120)
    screen = t.wait_status(f"lines 1–39 of {len(wide)}")
    assert len(screen) == 40 and screen[-1].endswith("n/p section · ? keys · q quit")
    assert screen[:39] == wide[:39]
    t.send("q")
    assert t.finish() == 0


def test_finishing_the_lesson_offers_quiz_and_lab_with_one_key(
    term: Callable[..., Terminal], tmp_path: Path
) -> None:
    last = len(HEADINGS)
    t = term("learn", "caching", str(last))
    t.wait_status(f"section {last} of {last}")
    t.send("G")
    t.wait_status("space: finish")
    t.send(" ")
    t.wait(lambda: "Take the quiz now? [Y/n]" in t.text)
    t.send("n")
    t.wait(lambda: "Start the lab now? [Y/n]" in t.text)
    t.send("n")
    assert t.finish() == 0
    text = ANSI.sub("", t.text)
    assert "Take the quiz now? [Y/n] no" in text and "Start the lab now? [Y/n] no" in text
    home = tmp_path / "home"
    rows = json.loads(sdtutor("list", "--json", env={"SDTUTOR_HOME": str(home)}).stdout)
    assert rows[4]["lesson"] == "read"
    # Read through once, the next `learn` starts again from the top.
    assert _position(home) == (0, 0)
    again = term("learn", "caching")
    screen = again.wait_status("section 1 of")
    assert "Caching layers and strategies" in screen[0]
    again.send("q")
    assert again.finish() == 0


@pytest.mark.parametrize(
    ("wanted", "heading"),
    [("3", "How it works"), ("how it", "How it works"), ("TRADE", "Trade-offs")],
)
def test_a_section_is_opened_by_number_or_title(
    term: Callable[..., Terminal], wanted: str, heading: str
) -> None:
    index = HEADINGS.index(heading)
    t = term("learn", "caching", wanted)
    screen = t.wait_status(f"{heading} · section {index + 1} of")
    assert screen[0].startswith(heading)
    t.send("\x1b")  # Esc on its own quits
    assert t.finish() == 0


@pytest.mark.parametrize(
    ("wanted", "problem"),
    [
        ("12", "has 9 sections; there is no section 12"),
        ("0", "there is no section 0"),
        ("zzz", 'No section of Caching layers and strategies starts with "zzz"'),
        ("how", '"how" could be section 3 ("How it works") or 6 ("How to decide")'),
    ],
)
def test_an_unknown_or_ambiguous_section_exits_2_with_the_list(
    tmp_path: Path, wanted: str, problem: str
) -> None:
    result = sdtutor(
        "learn", "caching", wanted, env={"SDTUTOR_HOME": str(tmp_path), "COLUMNS": "120"}
    )
    assert result.returncode == 2
    assert problem in result.stderr
    for number, heading in enumerate(HEADINGS, 1):
        assert f"{number}. {heading}" in result.stderr
    assert "Traceback" not in result.stderr


def test_without_a_terminal_the_whole_lesson_is_printed(tmp_path: Path) -> None:
    result = sdtutor("learn", "caching", env={"SDTUTOR_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    positions = [result.stdout.index(h) for h in HEADINGS]
    assert positions == sorted(positions)
    assert "\x1b" not in result.stdout
    # With a section, that section alone.
    one = sdtutor("learn", "caching", "trade", env={"SDTUTOR_HOME": str(tmp_path)})
    assert one.returncode == 0
    assert "Trade-offs" in one.stdout and "Why it matters" not in one.stdout


def test_help_names_topic_and_section(tmp_path: Path) -> None:
    result = sdtutor("learn", "--help", env={"SDTUTOR_HOME": str(tmp_path)})
    assert result.returncode == 0
    assert "learn [OPTIONS] TOPIC [SECTION]" in result.stdout


def test_next_says_that_reviews_are_due_once(term: Callable[..., Terminal], tmp_path: Path) -> None:
    home = tmp_path / "home"
    question = Course().quiz(resolve("caching")).questions[0].id
    when = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    code = (
        "from datetime import datetime\n"
        "from sdtutor.progress.store import ProgressStore\n"
        "from sdtutor.review import record\n"
        "with ProgressStore() as s:\n"
        f"    record(s, 'caching', {question!r}, False, datetime.fromisoformat({when!r}))\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "SDTUTOR_HOME": str(home)}, check=True
    )
    t = term("next")
    t.wait(lambda: "Answer" in ANSI.sub("", t.text))
    t.send("\x1b")
    t.finish()
    assert ANSI.sub("", t.text).count("due for review") == 1, t.text
