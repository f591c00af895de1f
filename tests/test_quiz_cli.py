"""`sdtutor quiz` and `sdtutor review` as a learner uses them: the real command in a
pseudo-terminal 80 columns wide, keys sent as a person (or a paste) sends them, and the
screen read back to decide what to press."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shutil
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURE_LESSON = REPO / "tests" / "fixtures" / "course" / "lessons" / "07-indexing.md"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]")

ORDER_STEPS = [
    "Find the statement with the most total time in pg_stat_statements over the last day",
    "Run EXPLAIN (ANALYZE, BUFFERS) on it with realistic parameters to see where the work goes",
    "Run CREATE INDEX CONCURRENTLY outside a transaction block so writes keep flowing",
    "Check that the new index is valid, then run EXPLAIN (ANALYZE, BUFFERS) again to confirm",
]

QUIZ = f"""\
format_version: 1
topic: indexing
questions:
  - id: fanout
    type: numeric
    idea: fan-out
    section: How it works
    prompt: Each of 250 leaf pages holds 250 entries. How many entries in all?
    answer: 62500
    tolerance: 0
    explanation: |
      250 x 250 = 62,500.

  - id: fix-order
    type: order
    idea: fixing a slow query
    section: Mental model
    prompt: Put the steps in order.
    choices:
      - "{ORDER_STEPS[2]}"
      - "{ORDER_STEPS[0]}"
      - "{ORDER_STEPS[3]}"
      - "{ORDER_STEPS[1]}"
    answer: [b, d, a, c]
    explanation: |
      Evidence first (b), then why (d), then the fix (a), then proof (c).

  - id: leaf-holds
    type: single
    idea: what an index entry holds
    section: Pitfalls
    prompt: What does a B-tree leaf entry hold?
    choices:
      - The whole row
      - The key and the row's address
      - Only the row's address
      - The page's free space map
    answer: b
    explanation: |
      The key and the row's address (b); the row stays in the heap.

  - id: seekable
    type: multiple
    idea: leftmost prefix
    section: Pitfalls
    prompt: Which filters can seek in an index on (user_id, created_at)?
    choices:
      - "WHERE user_id = 1"
      - "WHERE created_at > now()"
      - "WHERE user_id = 1 AND created_at > now()"
      - "WHERE status = 'new'"
    answer: [a, c]
    explanation: |
      Only filters on the leading column can seek (a, c).

  - id: backward
    type: truefalse
    idea: backward scans
    section: How it works
    prompt: |
      This query needs an index declared DESC:

      ```sql
      SELECT id FROM orders
       WHERE user_id = 42
       ORDER BY created_at DESC
       LIMIT 20;
      ```
    answer: false
    explanation: |
      False: a B-tree can be read backward.
"""
RIGHT_TEXTS = {
    "leaf-holds": ["The key and the row's address"],
    "seekable": ["WHERE user_id = 1", "WHERE user_id = 1 AND created_at > now()"],
}


@pytest.fixture
def course(tmp_path: Path) -> Path:
    """A one-topic course: the fixture lesson and a five-question quiz, one of each type."""
    root = tmp_path / "course"
    (root / "lessons").mkdir(parents=True)
    (root / "quizzes").mkdir()
    shutil.copy(FIXTURE_LESSON, root / "lessons" / "07-indexing.md")
    (root / "quizzes" / "07-indexing.yaml").write_text(QUIZ)
    return root


@pytest.fixture
def env(tmp_path: Path, course: Path) -> dict[str, str]:
    """A learner's environment: own home, the test course, a plain 80-column terminal."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "SDTUTOR_HOME": str(tmp_path / "home"),
        "SDTUTOR_COURSE": str(course),
        "TERM": "xterm-256color",
        "COLUMNS": "80",
        "LINES": "24",
        "NO_COLOR": "1",
    }


class Terminal:
    """`sdtutor ARGS` on a pseudo-terminal of 80x24 that is its controlling terminal."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))

        def controlling_tty() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sdtutor", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=REPO,
            preexec_fn=controlling_tty,
        )
        os.close(slave)
        self.master = master
        self.raw = ""
        self.mark = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.raw += data.decode("utf-8", "replace")

    @property
    def text(self) -> str:
        """Everything shown so far, without escape sequences."""
        with self._lock:
            return ANSI.sub("", self.raw).replace("\r\n", "\n")

    def since_mark(self) -> str:
        return self.text[self.mark :]

    def expect(self, needle: str, timeout: float = 20) -> str:
        """Wait until `needle` appears after the mark; move the mark past it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text
            found = text.find(needle, self.mark)
            if found >= 0:
                seen = text[self.mark : found + len(needle)]
                self.mark = found + len(needle)
                return seen
            if self.proc.poll() is not None:
                time.sleep(0.2)
                if needle in self.text[self.mark :]:
                    continue
                break
            time.sleep(0.02)
        raise AssertionError(f"never saw {needle!r}; after the mark:\n{self.text[self.mark :]}")

    def send(self, keys: str) -> None:
        """One write: a paste, or keys typed faster than the program reads them."""
        os.write(self.master, keys.encode())

    def type(self, keys: str) -> None:
        """Keys one at a time, as a person types them."""
        for key in keys:
            self.send(key)
            time.sleep(0.05)

    def wait(self, timeout: float = 20) -> int:
        code = self.proc.wait(timeout=timeout)
        time.sleep(0.1)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for t in opened:
        t.close()


def start(terminals: list[Terminal], env: dict[str, str], *args: str) -> Terminal:
    t = Terminal(env, *args)
    terminals.append(t)
    return t


def choices_on_screen(question_text: str) -> dict[str, str]:
    """The choices as shown: letter -> full text (continuation lines joined)."""
    out: dict[str, str] = {}
    current = ""
    for line in question_text.splitlines():
        match = re.match(r"^  ([a-f])\) (.*)$", line)
        if match:
            current = match.group(1)
            out[current] = match.group(2).strip()
        elif current and line.startswith("     ") and line.strip():
            out[current] += " " + line.strip()
        else:
            current = ""
    return out


def letter_of(shown: dict[str, str], text: str) -> str:
    return next(letter for letter, choice in shown.items() if choice == text)


def answer_question(t: Terminal, right: bool) -> dict[str, str]:
    """Answer the question now on screen, right or wrong, reading its letters off the
    screen; returns the choices as shown."""
    screen = t.expect("q stops.")
    kind = re.findall(r"(?:Question|Review) \d+ of \d+ \(([^)·]*?)(?: · [\w-]+)?\)", screen)[-1]
    shown = choices_on_screen(screen)
    if kind == "a number":
        keys = "62500" if right else "750"
    elif kind == "true or false":
        keys = "f" if right else "t"
    elif kind == "put in order":
        keys = "".join(letter_of(shown, step) for step in ORDER_STEPS)
        if not right:
            keys = keys[::-1]
    elif kind == "one answer":
        good = letter_of(shown, RIGHT_TEXTS["leaf-holds"][0])
        keys = good if right else next(k for k in shown if k != good)
    else:
        good = "".join(letter_of(shown, text) for text in RIGHT_TEXTS["seekable"])
        keys = good if right else next(k for k in shown if k not in good)
    t.type(keys + "\r")
    t.expect("✓ Right." if right else "✗ Not quite.")
    return shown


def run_quiz(terminals: list[Terminal], env: dict[str, str], rights: list[bool]) -> Terminal:
    """A whole quiz, answered right or wrong question by question; returns the finished
    terminal (exit code and screen)."""
    t = start(terminals, env, "quiz", "indexing")
    for number, right in enumerate(rights, start=1):
        answer_question(t, right)
        if number < len(rights):
            t.expect("[Enter] next question")
            t.send("\r")
    t.wait()
    return t


def export(env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "sdtutor", "progress", "export", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


# ---------------------------------------------------------------- typing


def test_a_pasted_number_with_enter_is_graded(terminals: list[Terminal], env: dict) -> None:
    t = start(terminals, env, "quiz", "indexing")
    t.expect("Type a number, then Enter.")
    t.send("62500\r")  # one write, as a paste arrives
    seen = t.expect("✓ Right.")
    assert "Answer: 62500" in seen
    t.expect("The answer: 62,500")


def test_nothing_counts_until_enter_and_any_key_can_be_taken_back(
    terminals: list[Terminal], env: dict
) -> None:
    t = start(terminals, env, "quiz", "indexing")
    t.expect("Type a number, then Enter.")
    t.type("750\x7f\x7f\x7f62500")  # typed wrong, taken back with Backspace
    time.sleep(0.3)
    assert "Right" not in t.since_mark() and "Not quite" not in t.since_mark()
    t.send("\r")
    t.expect("✓ Right.")
    t.expect("[Enter] next question")
    t.send("\r")

    # Order: a wrong first step is taken back before it counts.
    screen = t.expect("q stops.")
    shown = choices_on_screen(screen)
    right = "".join(letter_of(shown, step) for step in ORDER_STEPS)
    t.type(right[1] + "\x7f" + right[:2])
    t.send("\r")  # incomplete: a hint, not a grade
    t.expect("Put all 4 letters in order")
    assert "Not quite" not in t.since_mark()
    t.type(right[2:] + "\r")
    t.expect("✓ Right.")
    t.expect("[Enter] next question")
    t.send("\r")

    # Single: one key does not count; another letter replaces it; Enter submits.
    screen = t.expect("q stops.")
    shown = choices_on_screen(screen)
    good = letter_of(shown, RIGHT_TEXTS["leaf-holds"][0])
    bad = next(k for k in shown if k != good)
    t.type(bad)
    time.sleep(0.4)
    assert "Right" not in t.since_mark() and "Not quite" not in t.since_mark()
    t.type(good + "\r")
    t.expect("✓ Right.")
    t.expect("[Enter] next question")
    t.send("\r")

    # Multiple: a second press unpicks.
    screen = t.expect("q stops.")
    shown = choices_on_screen(screen)
    picks = [letter_of(shown, text) for text in RIGHT_TEXTS["seekable"]]
    extra = next(k for k in shown if k not in picks)
    t.type(extra + "".join(picks) + extra + "\r")
    t.expect("✓ Right.")
    t.expect("[Enter] next question")
    t.send("\r")

    # True/false: t, then changed to f before Enter.
    t.expect("Press t or f, then Enter.")
    t.type("t")
    time.sleep(0.3)
    assert "Right" not in t.since_mark() and "Not quite" not in t.since_mark()
    t.type("f\r")
    t.expect("✓ Right.")
    t.expect("Score: 5 of 5")
    assert t.wait() == 0


def test_code_in_a_prompt_keeps_its_lines(terminals: list[Terminal], env: dict) -> None:
    t = run_quiz(terminals, env, [True] * 5)
    screen = t.text
    for line in ("SELECT id FROM orders", "WHERE user_id = 42", "ORDER BY created_at DESC"):
        assert re.search(rf"^\s*{re.escape(line)}\s*$", screen, re.M), line


def test_an_interrupted_quiz_keeps_the_answers_given(terminals: list[Terminal], env: dict) -> None:
    t = start(terminals, env, "quiz", "indexing")
    answer_question(t, right=True)
    t.expect("[Enter] next question")
    t.send("\r")
    answer_question(t, right=False)
    t.expect("[Enter] next question")
    t.send("\r")
    t.expect("q stops.")
    t.send("\x03")  # Ctrl-C at the third question
    assert t.wait() == 130
    assert "Traceback" not in t.text
    answers = export(env)["answers"]
    assert [(a["question_id"], a["correct"]) for a in answers] == [
        ("fanout", True),
        ("fix-order", False),
    ]

    again = start(terminals, env, "quiz", "indexing")
    answer_question(again, right=True)
    again.expect("[Enter] next question")
    again.send("q")
    assert again.wait() == 130
    assert "Stopped after 1 of 5 questions" in again.text
    assert len(export(env)["answers"]) == 3


# ---------------------------------------------------------------- what is shown


def test_the_whole_right_order_is_shown_at_80_columns(terminals: list[Terminal], env: dict) -> None:
    t = start(terminals, env, "quiz", "indexing")
    answer_question(t, right=True)
    t.expect("[Enter] next question")
    t.send("\r")
    answer_question(t, right=False)
    feedback = t.expect("[Enter] next question")
    lines = feedback.splitlines()
    assert max(len(line) for line in lines) <= 80
    # Each step on its own numbered line, wrapped inside the panel, nothing cut.
    body = " ".join(line.strip(" │") for line in lines)
    body = re.sub(r"\s+", " ", body)
    for n, step in enumerate(ORDER_STEPS, start=1):
        assert re.search(rf"{n}\. [a-d]\) {re.escape(step)}", body), (step, body)
    assert "…" not in feedback


def test_choices_wrap_under_their_text(terminals: list[Terminal], env: dict) -> None:
    t = start(terminals, env, "quiz", "indexing")
    answer_question(t, right=True)
    t.expect("[Enter] next question")
    t.send("\r")
    screen = t.expect("q stops.")
    question = screen[screen.rfind("Question 2 of 5") :]
    lines = [line for line in question.splitlines() if line.strip()]
    wrapped = [line for line in lines[2:-1] if not re.match(r"^  [a-d]\) ", line)]
    assert wrapped, question  # the long steps do wrap at 80 columns...
    for line in wrapped:  # ...and continue under the text, not at column 0
        assert line.startswith("     ") and not line.startswith("      "), question


def test_choice_order_changes_between_attempts_and_grading_follows(
    terminals: list[Terminal], env: dict
) -> None:
    orders: list[list[tuple[str, ...]]] = []
    for _ in range(2):
        t = start(terminals, env, "quiz", "indexing")
        shown_orders = []
        for number in range(1, 6):
            shown = answer_question(t, right=True)
            shown_orders.append(tuple(shown.values()))
            if number < 5:
                t.expect("[Enter] next question")
                t.send("\r")
        t.expect("Score: 5 of 5")
        assert t.wait() == 0
        orders.append(shown_orders)
    assert orders[0] != orders[1]
    # The record is in the quiz file's letters, whatever was shown.
    recorded = {(a["question_id"], a["response"]) for a in export(env)["answers"]}
    assert ("fix-order", "bdac") in recorded
    assert ("leaf-holds", "b") in recorded
    assert ("seekable", "ac") in recorded
    assert len(recorded) == 5  # both attempts recorded the same file-letter answers


def test_explanation_letters_follow_the_shown_choices(terminals: list[Terminal], env: dict) -> None:
    t = start(terminals, env, "quiz", "indexing")
    for _ in range(2):
        answer_question(t, right=True)
        t.expect("[Enter] next question")
        t.send("\r")
    shown = answer_question(t, right=True)
    feedback = t.expect("[Enter] next question")
    good = letter_of(shown, RIGHT_TEXTS["leaf-holds"][0])
    assert f"The key and the row's address ({good})" in feedback


# ---------------------------------------------------------------- scores and exit codes


def test_exit_code_follows_the_pass_mark(terminals: list[Terminal], env: dict) -> None:
    passed = run_quiz(terminals, env, [True, True, True, True, False])
    assert passed.proc.returncode == 0
    assert "Score: 4 of 5 (80%)" in passed.text

    failed = run_quiz(terminals, env, [True, False, True, False, True])
    assert failed.proc.returncode == 1
    assert "Score: 3 of 5 (60%)" in failed.text


def test_summary_names_commands_that_open_the_missed_sections(
    terminals: list[Terminal], env: dict, course: Path
) -> None:
    t = run_quiz(terminals, env, [False, False, True, False, True])
    summary = t.text[t.text.rfind("Quiz finished") :]
    commands = re.findall(r"sdtutor learn indexing (\d+)\s+(\w[\w ]*?)\s*│", summary)
    headings = re.findall(r"^## (.+)$", (course / "lessons" / "07-indexing.md").read_text(), re.M)
    # Missed: fanout (How it works), fix-order (Mental model), seekable (Pitfalls).
    assert {title for _, title in commands} == {"How it works", "Mental model", "Pitfalls"}
    for number, title in commands:
        assert headings[int(number) - 1] == title
        # ...and the command opens that section.
        opened = subprocess.run(
            [sys.executable, "-m", "sdtutor", "learn", "indexing", number],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert opened.returncode == 0, opened.stderr
        assert opened.stdout.lstrip().startswith(title), opened.stdout[:200]


def test_piped_answers_that_run_out_are_kept_and_say_what_to_do(env: dict) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sdtutor", "quiz", "indexing"],
        input="62500\nbdac\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 2
    assert "ran out after 2 questions of 5" in out.stderr and "Traceback" not in out.stderr
    assert [a["correct"] for a in export(env)["answers"]] == [True, True]


# ---------------------------------------------------------------- review


def _due_now(env: dict[str, str], ids: list[str]) -> None:
    """Make these questions due for review, as if answered wrongly a month ago."""
    code = (
        "from datetime import UTC, datetime, timedelta\n"
        "from sdtutor.progress.store import ProgressStore\n"
        "from sdtutor.review import record\n"
        "when = datetime.now(UTC) - timedelta(days=30)\n"
        "with ProgressStore() as store:\n"
        f"    for qid in {ids!r}:\n"
        "        record(store, 'indexing', qid, False, when=when)\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=REPO, timeout=60)


def test_review_asks_yes_or_no_with_one_key(terminals: list[Terminal], env: dict) -> None:
    _due_now(env, ["fanout", "leaf-holds", "backward"])
    t = start(terminals, env, "review", "--limit", "1")
    t.expect("3 questions due for review; here is the first.")
    answer_question(t, right=True)
    t.expect("2 more questions due. Go on? [Y/n]")
    t.send("\r")  # Enter: the default, yes
    answer_question(t, right=True)
    t.expect("1 more question due. Go on? [Y/n]")
    t.send("n")  # one key, no Enter
    assert t.wait(timeout=10) == 0
    assert t.text.rstrip().endswith("no")
    assert len(export(env)["answers"]) == 2


def test_review_scores_like_a_quiz(terminals: list[Terminal], env: dict) -> None:
    _due_now(env, ["fanout"])
    t = start(terminals, env, "review")
    t.expect("1 question due for review.")
    answer_question(t, right=False)
    assert t.wait() == 1
    assert "Score: 0 of 1" in t.text


@pytest.mark.parametrize("command", ["quiz", "review"])
def test_help_documents_the_exit_codes(command: str, env: dict) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sdtutor", command, "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    text = re.sub(r"[\s│]+", " ", out.stdout)
    assert out.returncode == 0
    assert "Exit 0: finished at or above the pass mark (70%); 1: below it; 130: stopped" in text


def test_long_code_lines_wrap_at_spaces_under_their_own_line() -> None:
    from rich.console import Console
    from rich.panel import Panel

    from sdtutor.cli.quiz import _markdown

    plan = "      ->  Seq Scan on orders (actual time=0.031..8009.874 rows=1200 loops=1 width=64)"
    console = Console(width=80, no_color=True, record=True)
    console.print(Panel(_markdown(f"Plan:\n\n```\n{plan}\n```\n")))
    lines = [line.strip("│").rstrip() for line in console.export_text().splitlines()]
    first = next(i for i, line in enumerate(lines) if "Seq Scan" in line)
    assert lines[first].endswith("rows=1200")  # broken at a space, not inside a token
    assert lines[first + 1] == " " * 10 + "loops=1 width=64)"  # under its own line, +2
