"""`sdtutor quiz TOPIC` and `sdtutor review`: questions answered at the keyboard, the right
answer and its explanation after each, and a summary that says what to re-read.

Answering works the same way for every question type: keys build the answer on an
answer line, and nothing counts until Enter. A letter picks a choice (another letter
changes it); in a multiple-answer question a letter picks or unpicks; in an order
question letters add steps first to last; t or f answers true/false; digits make a
number. Backspace takes the last key back. So every answer can be taken back before it
counts, and one stray key never costs a question. Keys that arrive together (a paste,
fast typing) are read as if typed, so a pasted `62500` and Enter is graded at once.
Yes/no questions take one key: y or n, Enter for the default. q or Esc stops; the
answers already given are kept (each is saved as soon as it is graded), and Ctrl-C too.

Choices are shuffled with `grading.shuffled`: per attempt in a quiz (seeded by the
attempt id) and per showing in review (the date and the card's review count), so a
learner learns ideas, not positions. Grading uses the shuffled question, i.e. the letters
the learner saw; the response recorded in the progress store is mapped back to the quiz
file's letters, so `progress export` compares directly with the file's `answer`. Without
a terminal (answers piped on stdin, one per line) choices keep the file's order and
letters, so a script answers by the file.

Exit codes: `quiz` 0 when finished at or above the pass mark (grading.PASS_MARK, 70%),
1 below it, 130 stopped before the end, 2 when piped answers run out. `review` the same
on the session's score, and 0 when nothing is due.
"""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import typer

from sdtutor.topics import Topic

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text

    from sdtutor.content.models import Question
    from sdtutor.grading import Graded, Summary

ENTER = "enter"
BACKSPACE = "backspace"
STOP = "stop"
CLEAR = "clear"
IGNORED = "ignored"
NUMBER_KEYS = "0123456789.,-_ "


def plural(count: int, word: str, many: str | None = None) -> str:
    """'1 question', '3 questions', '1 try', '2 tries'."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


def register(app: typer.Typer) -> None:
    """Add the commands to the app."""
    app.command("quiz")(quiz)
    app.command("review")(review)


def quiz(
    topic: str = typer.Argument(..., help="Number, slug or unambiguous prefix."),
) -> None:
    """Take a topic's quiz: keys build each answer, Enter submits it, q stops.

    Exit 0: finished at or above the pass mark (70%); 1: below it; 130: stopped early.

    Answers given before a stop are kept. Choices are shuffled for every attempt.

    Without a terminal: one answer a line on stdin, in the file's letters; 2 if they run out.
    """
    from sdtutor.grading import PASS_MARK
    from sdtutor.topics import resolve

    summary = run_quiz(resolve(topic))
    if summary is None:
        raise SystemExit(130)  # it said where it stopped: no "Interrupted" line
    if summary.score < PASS_MARK:
        raise typer.Exit(1)


def review(
    as_json: bool = typer.Option(False, "--json", help="List what is due as JSON; ask nothing."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="At most this many at a time."),
) -> None:
    """Spaced review of due questions from every topic (missed ones come back soon).

    Keys build each answer, Enter submits it, q stops; after a batch, y goes on.

    Exit 0: finished at or above the pass mark (70%); 1: below it; 130: stopped early.

    Exit 0 too when nothing is due. Without a terminal: one answer a line on stdin.
    """
    from datetime import UTC, datetime

    from sdtutor.cli.ui import console, dump_json, interactive
    from sdtutor.grading import PASS_MARK, shuffled
    from sdtutor.progress.store import ProgressStore
    from sdtutor.review import describe_wait, outlook

    with ProgressStore() as store:
        look = outlook(store)
    if as_json:
        dump_json(
            {
                "due": len(look.due),
                "scheduled": look.scheduled,
                "next_due": look.next_due.isoformat() if look.next_due else None,
                "questions": [d.to_json() for d in look.due[:limit]],
            }
        )
        return
    if not look.due:
        if look.scheduled == 0:
            console.print(
                "Nothing to review yet: questions join the review once you have "
                "answered them in a quiz (`sdtutor quiz TOPIC`)."
            )
        else:
            wait = describe_wait(look.next_due) if look.next_due else "later"
            console.print(
                f"Nothing is due. {plural(look.scheduled, 'question')} "
                f"{'is' if look.scheduled == 1 else 'are'} scheduled; the next comes back {wait}."
            )
        return
    everything: list[tuple[Topic, Graded]] = []
    today = datetime.now(UTC).date().isoformat()
    while True:
        batch = look.due[:limit]
        console.print(
            f"[bold]{plural(len(look.due), 'question')} due for review[/]"
            + (
                (
                    "; here is the first."
                    if len(batch) == 1
                    else f"; here are the first {len(batch)}."
                )
                if len(batch) < len(look.due)
                else "."
            )
        )
        items = [
            Asked(
                d.topic,
                d.question,
                shuffled(d.question, f"{today}:{d.reviews}") if interactive() else d.question,
            )
            for d in batch
        ]
        results = ask(items, attempt_id=None, title="Review")
        if results is None:
            raise SystemExit(130)  # it said where it stopped: no "Interrupted" line
        everything += results
        show_summary(results, title="Review finished")
        with ProgressStore() as store:
            look = outlook(store)
        if not look.due or not interactive():
            break
        if not yes_no(f"{plural(len(look.due), 'more question')} due. Go on?", default=True):
            break
    score = sum(g.correct for _, g in everything) / len(everything)
    if score < PASS_MARK:
        raise typer.Exit(1)


# ---------------------------------------------------------------- keys


def split_keys(text: str) -> list[str]:
    """What arrived at the terminal as a list of keys: characters, and ENTER, BACKSPACE,
    STOP, CLEAR or IGNORED (arrow keys and other escape sequences). Ctrl-C raises
    KeyboardInterrupt. A paste is just many keys."""
    keys: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        i += 1
        if ch == "\x1b":
            if i == len(text):
                keys.append(STOP)  # Esc on its own
                continue
            # An escape sequence (arrows, function keys, Alt+key): skip it whole.
            if text[i] in "[O":
                i += 1
                while i < len(text) and not ("\x40" <= text[i] <= "\x7e"):
                    i += 1
            i += 1
            keys.append(IGNORED)
        elif ch == "\x03":
            raise KeyboardInterrupt
        elif ch in "\r\n":
            keys.append(ENTER)
        elif ch in "\x7f\x08":
            keys.append(BACKSPACE)
        elif ch in "\x04":
            keys.append(STOP)
        elif ch == "\x15":  # Ctrl-U
            keys.append(CLEAR)
        elif ch.isprintable():
            keys.append(ch)
        else:
            keys.append(IGNORED)
    return keys


class Keyboard:
    """The terminal's keys, read without echo and without waiting for a line."""

    def __init__(self, fd: int) -> None:
        import codecs

        self.fd = fd
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def read(self) -> list[str]:
        """Wait for at least one key, then take everything else already there (a paste
        arrives in pieces, so wait a moment for the rest)."""
        import select

        chunks: list[bytes] = []
        timeout: float | None = None
        while True:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if not ready:
                break
            data = os.read(self.fd, 4096)
            if not data:
                return [STOP] if not chunks else split_keys(self._decode(chunks))
            chunks.append(data)
            timeout = 0.02
        return split_keys(self._decode(chunks))

    def _decode(self, chunks: list[bytes]) -> str:
        return self._decoder.decode(b"".join(chunks))

    def flush(self) -> None:
        """Forget keys already pressed (call it before showing a new question)."""
        import termios

        termios.tcflush(self.fd, termios.TCIFLUSH)


_keyboard: Keyboard | None = None


@contextmanager
def keyboard() -> Iterator[Keyboard]:
    """The terminal in key-at-a-time mode (no echo, no line buffering) while questions are
    asked; restored afterwards, also on Ctrl-C. Ctrl-C still interrupts."""
    global _keyboard
    if _keyboard is not None:
        yield _keyboard
        return
    import termios

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    mode = termios.tcgetattr(fd)
    mode[3] &= ~(termios.ICANON | termios.ECHO)
    mode[6][termios.VMIN] = 1
    mode[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, mode)
    _keyboard = Keyboard(fd)
    try:
        yield _keyboard
    finally:
        _keyboard = None
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def yes_no(question: str, default: bool) -> bool:
    """A yes/no question answered with one key: y, n, or Enter for the default (Esc: no).
    Without a terminal, the default."""
    from sdtutor.cli.ui import console, interactive

    if not interactive():
        return default
    choices = "\\[Y/n]" if default else "\\[y/N]"
    with keyboard() as keys:
        keys.flush()  # before the question shows: keys from before it are not answers
        console.print(f"{question} [bold]{choices}[/] ", end="")
        while True:
            for key in keys.read():
                answer = {"y": True, "n": False, "q": False, ENTER: default, STOP: False}.get(
                    key.lower() if len(key) == 1 else key
                )
                if answer is not None:
                    console.print("yes" if answer else "no")
                    return answer


# ---------------------------------------------------------------- answering


@dataclass(frozen=True)
class Asked:
    """A question as asked: its topic, the quiz file's question, and what is shown (the
    same question with its choices shuffled, or the original)."""

    topic: Topic
    original: "Question"
    shown: "Question"


class AnswerLine:
    """The answer being typed for one question: keys in, the line to show out."""

    def __init__(self, question: "Question") -> None:
        from sdtutor.content.models import LETTERS

        self.question = question
        self.letters = LETTERS[: len(question.choices)]
        self.typed = ""
        self.message = ""

    def press(self, key: str) -> str | None:
        """Apply one key; ENTER or STOP when the answer is submitted or abandoned."""
        self.message = ""
        kind = self.question.type
        if key in (ENTER, STOP):
            return key
        if key == BACKSPACE:
            self.typed = self.typed[:-1]
        elif key == CLEAR:
            self.typed = ""
        elif key == IGNORED:
            pass
        elif key.lower() == "q" and kind != "numeric":
            return STOP
        elif kind == "numeric":
            if key in NUMBER_KEYS:
                self.typed += key
            elif key.lower() == "q":
                return STOP
        elif kind == "truefalse":
            if key.lower() in "tf":
                self.typed = key.lower()
        elif key.lower() in self.letters:
            key = key.lower()
            if kind == "single":
                self.typed = key
            elif kind == "multiple":
                self.typed = self.typed.replace(key, "") if key in self.typed else self.typed + key
            elif key not in self.typed:  # order: each step once
                self.typed += key
        return None

    def response(self) -> str:
        """What was typed, as grading.parse reads it."""
        if self.question.type == "multiple":
            return "".join(sorted(self.typed))
        return self.typed

    def shown(self) -> str:
        """The answer line: what is picked so far."""
        kind = self.question.type
        if kind == "numeric":
            return f"Answer: {self.typed}"
        if kind == "truefalse":
            return "Answer: " + {"t": "true", "f": "false"}.get(self.typed, "")
        if kind == "single":
            if not self.typed:
                return "Answer: "
            choice = self.question.choices[self.letters.index(self.typed)]
            return f"Answer: {self.typed}) {choice}"
        if kind == "multiple":
            return "Picked: " + " ".join(sorted(self.typed))
        return "Order: " + " → ".join(self.typed)


def _instructions(question: "Question") -> str:
    from sdtutor.content.models import LETTERS

    letters = f"a–{LETTERS[len(question.choices) - 1]}" if question.choices else ""
    return {
        "single": f"Press a letter ({letters}), then Enter. Another letter changes it.",
        "multiple": "Press each right letter (again to unpick), then Enter.",
        "order": "Press the letters first to last, then Enter. Backspace takes one back.",
        "truefalse": "Press t or f, then Enter.",
        "numeric": "Type a number, then Enter.",
    }[question.type]


def _draw(line: AnswerLine) -> None:
    """The answer line, rewritten in place. Raw writes, cut to the terminal's width so it
    never wraps (a wrapped line could not be rewritten with a carriage return)."""
    import shutil

    from sdtutor.cli.ui import colour_enabled

    width = shutil.get_terminal_size((80, 24)).columns - 1
    label, _, value = line.shown().partition(": ")
    text = f"{label}: {value}"
    if line.message:
        text += f"  ({line.message})"
    if len(text) > width:
        text = text[: width - 1] + "…"
    bold, dim, plain = ("\x1b[1m", "\x1b[2m", "\x1b[0m") if colour_enabled() else ("", "", "")
    head, rest = text[: len(label) + 1], text[len(label) + 1 :]
    if line.message and "  (" in rest:
        body, _, note = rest.rpartition("  (")
        rest = f"{body}{dim}  ({note}{plain}"
    sys.stdout.write(f"\r\x1b[2K{bold}{head}{plain}{rest}")
    sys.stdout.flush()


def _keys(question: "Question") -> str | None:
    """One well-formed answer typed at the terminal; None when the learner stops."""
    from sdtutor.cli.ui import console
    from sdtutor.grading import BadResponse, parse

    console.print(f"[bold]{_instructions(question)}[/] [dim]q stops.[/]")
    line = AnswerLine(question)
    with keyboard() as keys:
        _draw(line)
        while True:
            for key in keys.read():
                action = line.press(key)
                if action == STOP:
                    sys.stdout.write("\n")
                    return None
                if action == ENTER:
                    if not line.typed.strip():
                        line.message = "nothing picked yet"
                        break
                    try:
                        parse(question, line.response())
                    except BadResponse as exc:
                        line.message = str(exc).rstrip(".")
                        break
                    _draw(line)
                    sys.stdout.write("\n")
                    return line.response()
            _draw(line)


class _PipedOut(Exception):
    """Piped answers ran out before the last question."""


def _answer(question: "Question", number: int) -> "Graded | None":
    """One graded answer: keys at a terminal (None if the learner stops), a line of stdin
    otherwise."""
    from sdtutor.cli.ui import err, interactive
    from sdtutor.grading import BadResponse, Graded, grade

    if interactive():
        response = _keys(question)
        return None if response is None else grade(question, response)
    try:
        response = input()
    except EOFError:
        raise _PipedOut from None
    try:
        return grade(question, response)
    except BadResponse as exc:
        err.print(f"Question {number}: '{response}' is not an answer: {exc}")
        return Graded(question, response.strip(), False)


# ---------------------------------------------------------------- rendering


def _inline(text: str) -> "Text":
    """Choice text: `code` spans styled, everything else as written (never markup)."""
    from rich.text import Text

    out = Text()
    for i, part in enumerate(text.split("`")):
        out.append(part, style="markdown.code" if i % 2 and part else "")
    if text.count("`") % 2:  # an unpaired backtick is just a character
        out = Text(text)
    return out


def _markdown(text: str) -> "RenderableType":
    """A prompt or explanation as Markdown, its code blocks kept line for line."""
    return _markdown_class()(text)


_MARKDOWN: Any = None


def _markdown_class() -> Any:
    """rich's Markdown, with code blocks whose long lines wrap at spaces and continue
    indented under their own line, so a plan keeps its shape at 80 columns."""
    global _MARKDOWN
    if _MARKDOWN is not None:
        return _MARKDOWN
    from rich.markdown import CodeBlock, Markdown
    from rich.syntax import Syntax
    from rich.text import Text

    class Code(CodeBlock):
        def __rich_console__(self, console: Any, options: Any) -> Iterator[Text]:
            code = str(self.text).rstrip()
            highlighted = Syntax(
                code, self.lexer_name, theme=self.theme, background_color="default"
            ).highlight(code)
            highlighted.rstrip()  # highlight() ends with a newline: no blank last line
            width = max(options.max_width - 2, 20)
            for line in highlighted.split("\n", allow_blank=True):
                line.rstrip()
                indent = min(len(line.plain) - len(line.plain.lstrip(" ")), width // 2)
                body = line[indent:]
                if indent + len(body) <= width:
                    yield Text(" ") + line
                    continue
                pieces = body.wrap(console, width - indent - 2, overflow="fold")
                for n, piece in enumerate(pieces):
                    pad = " " * (1 + indent + (2 if n else 0))
                    yield Text(pad) + piece

    class CourseMarkdown(Markdown):
        elements: ClassVar[dict[str, type[Any]]] = {
            **Markdown.elements,
            "fence": Code,
            "code_block": Code,
        }

    _MARKDOWN = CourseMarkdown
    return _MARKDOWN


def _hanging(rows: "list[tuple[str, Text]]", gap: int = 1) -> "RenderableType":
    """Rows of 'key  text' where text wraps under itself, not under the key."""
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, gap))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for key, text in rows:
        grid.add_row(Text(key, style="bold"), text)
    return grid


def question_view(question: "Question") -> "RenderableType":
    """The prompt, then the choices with their letters."""
    from rich.console import Group

    from sdtutor.content.models import LETTERS

    parts: list[RenderableType] = [_markdown(question.prompt)]
    if question.choices:
        parts.append(
            _hanging(
                [
                    (f"  {letter})", _inline(choice))
                    for letter, choice in zip(LETTERS, question.choices, strict=False)
                ]
            )
        )
    return Group(*parts)


def answer_view(graded: "Graded") -> "RenderableType":
    """The right answer in full, wrapped (never cut): each step of an order on its line."""
    from rich.console import Group
    from rich.text import Text

    from sdtutor.content.models import LETTERS
    from sdtutor.grading import describe_answer

    q = graded.question
    parts: list[RenderableType] = []
    if q.type == "single":
        parts.append(
            _hanging(
                [("The answer:", _inline(f"{q.answer}) {q.choices[LETTERS.index(q.answer)]}"))]
            )
        )
    elif q.type in ("multiple", "order"):
        parts.append(Text("The answers:" if q.type == "multiple" else "The order:", style="bold"))
        if q.type == "multiple":
            rows = [(f"  {a})", _inline(q.choices[LETTERS.index(a)])) for a in sorted(q.answer)]
        else:
            rows = [
                (f"  {n}. {a})", _inline(q.choices[LETTERS.index(a)]))
                for n, a in enumerate(q.answer, start=1)
            ]
        parts.append(_hanging(rows))
    else:
        parts.append(_hanging([("The answer:", Text(describe_answer(q)))]))
    if not graded.correct and graded.response:
        yours = graded.response
        if q.type == "order":
            yours = " → ".join(yours)
        elif q.type == "multiple":
            yours = " ".join(sorted(yours))
        elif q.type == "truefalse":
            yours = {"t": "true", "f": "false"}.get(yours.lower(), yours)
        parts.append(_hanging([("You answered:", Text(yours))]))
    return Group(*parts)


def _feedback(asked: Asked, graded: "Graded", due_in: str) -> "RenderableType":
    """Right or not, the full answer when it helps, and the explanation (its choice
    letters as shown)."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    from sdtutor.grading import relettered

    body: list[RenderableType] = []
    if not graded.correct or graded.question.type in ("order", "numeric"):
        body += [answer_view(graded), Text("")]
    body.append(_markdown(relettered(asked.original.explanation, asked.original, asked.shown)))
    return Panel(
        Group(*body),
        title="[bold green]✓ Right.[/]" if graded.correct else "[bold red]✗ Not quite.[/]",
        title_align="left",
        subtitle=f"back for review {due_in}",
        subtitle_align="right",
        border_style="green" if graded.correct else "red",
    )


# ---------------------------------------------------------------- the session


@contextmanager
def _no_interrupt() -> Iterator[None]:
    """Ctrl-C waits until an answer and its schedule are both saved, then interrupts."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed: list[int] = []
    old = signal.signal(signal.SIGINT, lambda *_: pressed.append(1))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if pressed:
        raise KeyboardInterrupt


def _original_response(asked: Asked, response: str) -> str:
    """A response in the quiz file's letters (see the module docstring)."""
    from sdtutor.grading import original_letters

    return original_letters(asked.original, asked.shown, response)


@contextmanager
def _keys_held() -> Iterator[None]:
    """Key-at-a-time mode for a whole session at a terminal, so keys pressed while the
    feedback is drawn are not echoed onto the screen."""
    from sdtutor.cli.ui import interactive

    if not interactive():
        yield
        return
    with keyboard():
        yield


def ask(
    items: list[Asked], attempt_id: int | None, title: str
) -> "list[tuple[Topic, Graded]] | None":
    """Ask each question, record and schedule each answer as soon as it is graded; None
    if the learner stops (what was answered stays recorded)."""
    from sdtutor.cli.ui import console, interactive
    from sdtutor.errors import UsageError
    from sdtutor.grading import KINDS
    from sdtutor.progress.store import ProgressStore
    from sdtutor.review import describe_wait, record

    results: list[tuple[Topic, Graded]] = []

    def stopped() -> None:
        console.print(f"Stopped after {len(results)} of {plural(len(items), 'question')}.")

    with ProgressStore() as store, _keys_held():
        for number, asked in enumerate(items, start=1):
            topic, question = asked.topic, asked.shown
            if _keyboard is not None:
                _keyboard.flush()  # keys pressed before this question showed are not for it
            origin = f" · {topic.slug}" if attempt_id is None else ""
            console.rule(
                f"[bold]{title} {number} of {len(items)}[/] "
                f"[dim]({KINDS[question.type]}{origin})[/]",
                align="left",
            )
            console.print(question_view(question))
            try:
                graded = _answer(question, number)
            except _PipedOut:
                raise UsageError(
                    f"The answers on stdin ran out after {plural(len(results), 'question')} "
                    f"of {len(items)}; those are saved.",
                    "Without a terminal, give one answer per line for every question "
                    "(letters as in the quiz file), or run this in a terminal.",
                ) from None
            if graded is None:
                stopped()
                return None
            with _no_interrupt():
                store.record_answer(
                    attempt_id,
                    topic.slug,
                    question.id,
                    _original_response(asked, graded.response),
                    graded.correct,
                )
                due = record(store, topic.slug, question.id, graded.correct)
            results.append((topic, graded))
            console.print(_feedback(asked, graded, describe_wait(due)))
            if interactive() and number < len(items):
                console.print("[dim]\\[Enter] next question  \\[q] stop[/]", end="")
                with keyboard() as keys:
                    key = keys.read()[0]
                console.print()
                if key in (STOP, "q", "Q"):
                    stopped()
                    return None
    return results


def _section_numbers(slug: str) -> dict[str, int]:
    """A lesson's section headings (lower case) and their 1-based numbers."""
    from sdtutor.content.course import Course
    from sdtutor.errors import ContentError
    from sdtutor.topics import resolve

    try:
        lesson = Course().lesson(resolve(slug))
    except ContentError:
        return {}
    return {s.heading.lower(): n for n, s in enumerate(lesson.sections, start=1)}


def show_summary(results: "list[tuple[Topic, Graded]]", title: str) -> "Summary":
    """The score, the weakest ideas and the commands that open the sections to re-read."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    from sdtutor.cli.ui import console
    from sdtutor.grading import PASS_MARK, summarise

    summary = summarise([g for _, g in results])
    passed = summary.score >= PASS_MARK
    parts: list[RenderableType] = [
        Text.assemble(
            (f"Score: {summary.correct} of {summary.total} ({summary.score:.0%})", "bold"),
            f": a pass (the pass mark is {PASS_MARK:.0%})."
            if passed
            else f": below the pass mark of {PASS_MARK:.0%}.",
        )
    ]
    if summary.missed_ideas:
        parts += [Text(""), Text("Ideas to revisit: " + "; ".join(summary.missed_ideas[:5]) + ".")]
    reread: dict[str, list[str]] = {}
    for topic, graded in results:
        section = graded.question.section
        if not graded.correct and section and section not in reread.setdefault(topic.slug, []):
            reread[topic.slug].append(section)
    rows: list[tuple[str, Text]] = []
    for slug, sections in reread.items():
        numbers = _section_numbers(slug) if sections else {}
        for section in sections:
            number = numbers.get(section.lower())
            command = f"sdtutor learn {slug}" + (f" {number}" if number else "")
            rows.append((f"  {command}", Text(section, style="italic")))
    if rows:
        parts += [Text(""), Text("Re-read these sections:"), _hanging(rows, gap=3)]
    parts.append(Text(""))
    if summary.missed_ideas:
        parts.append(Text("Missed questions come back for review within minutes; the rest later."))
    else:
        parts.append(Text("Every answer right."))
    console.print(
        Panel(
            Group(*parts),
            title=title,
            title_align="left",
            border_style="green" if passed else "yellow",
        )
    )
    return summary


def run_quiz(topic: Topic) -> "Summary | None":
    """Ask every question of a topic's quiz; return the Summary (None if stopped early)."""
    from sdtutor.cli.ui import interactive
    from sdtutor.content.course import Course
    from sdtutor.grading import shuffled
    from sdtutor.progress.store import ProgressStore

    quiz_data = Course().quiz(topic)
    with ProgressStore() as store:
        attempt = store.start_quiz(topic.slug, len(quiz_data.questions))
    shuffle = interactive()
    items = [Asked(topic, q, shuffled(q, attempt) if shuffle else q) for q in quiz_data.questions]
    results = ask(items, attempt_id=attempt, title="Question")
    if results is None:
        return None
    with ProgressStore() as store:
        store.finish_quiz(attempt)
    return show_summary(results, title="Quiz finished")
