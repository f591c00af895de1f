"""A quiz, or a review of due questions: one question at a time, with the CLI's keys.

Letters answer a one-answer question at once; t / f a true-or-false one; several letters
then Enter a multiple-answer one (a second press takes a letter back); letters first to
last then Enter an order question (Backspace undoes); a number then Enter a numeric one.
Each answer is recorded and scheduled for review as it is given, so nothing is lost when
the app closes mid-quiz.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, ClassVar

from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Markdown, Static

from sdtutor.content.models import LETTERS, Question, Quiz
from sdtutor.grading import (
    KINDS,
    BadResponse,
    Graded,
    grade,
    original_letters,
    relettered,
    shuffled,
    summarise,
)
from sdtutor.topics import Topic
from sdtutor.tui.keybar import KeyBar
from sdtutor.tui.titlebar import TitleBar

if TYPE_CHECKING:
    from sdtutor.review import DueQuestion

NUMERIC_KEYS = set("0123456789.,-")


def prompt_for(question: Question) -> str:
    """What to press, as the CLI says it."""
    letters = LETTERS[: len(question.choices)]
    if question.type == "single":
        return f"Press {'/'.join(letters)}"
    if question.type == "multiple":
        return "Press each right letter, then Enter"
    if question.type == "order":
        return "Press the letters first to last, then Enter (Backspace to undo)"
    if question.type == "truefalse":
        return "Press t or f"
    return "Type a number, then Enter"


class QuizScreen(Screen[None]):
    """Questions one at a time, the explanation after each, the summary at the end."""

    DEFAULT_CSS = """
    QuizScreen #bar {
        height: 1;
        padding: 0 1;
        background: $boost;
    }
    QuizScreen #where {
        width: 1fr;
        text-style: bold;
    }
    QuizScreen #score {
        width: auto;
    }
    QuizScreen #body {
        height: 1fr;
        padding: 0 1;
    }
    QuizScreen #prompt {
        margin: 0 0 1 0;
    }
    QuizScreen #choices {
        padding: 0 1;
    }
    QuizScreen #answer {
        margin: 1 0 0 0;
        padding: 0 1;
    }
    QuizScreen #feedback {
        display: none;
        height: auto;
        margin: 1 0 0 0;
        padding: 0 1;
        border: round $success;
        border-title-style: bold;
        border-subtitle-color: $text-muted;
    }
    QuizScreen #feedback.wrong {
        border: round $error;
    }
    QuizScreen #feedback Markdown {
        margin: 0;
    }
    QuizScreen #next-key {
        margin: 1 0 0 0;
        padding: 0 1;
        color: $text-muted;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        # q stops a quiz here as in the CLI (the answers are saved either way).
        Binding("escape,q", "stop", "Stop (answers are saved)", key_display="Esc"),
    ]

    def __init__(
        self,
        items: list[tuple[Topic, Question]],
        title: str,
        quiz_topic: Topic | None = None,
        seed: object = None,
    ) -> None:
        super().__init__()
        self.items = items
        self.title_text = title
        self.quiz_topic = quiz_topic  # None: a review across topics
        self.seed = seed
        self.attempt_id: int | None = None
        self.index = 0
        self.typed = ""
        self.shown: Question = items[0][1] if items else Question("", "single", "", "")
        self.graded: Graded | None = None
        self.results: list[tuple[Topic, Graded]] = []
        self.done = False

    @classmethod
    def for_quiz(cls, topic: Topic, quiz: Quiz) -> QuizScreen:
        """A topic's whole quiz (its attempt opens when the screen shows)."""
        return cls([(topic, q) for q in quiz.questions], "Question", quiz_topic=topic)

    @classmethod
    def for_review(cls, due: list[DueQuestion], limit: int = 20, seed: object = None) -> QuizScreen:
        """The most overdue questions, from every topic (at most `limit`, as the CLI)."""
        return cls(
            [(d.topic, d.question) for d in due[:limit]],
            "Review",
            seed=seed if seed is not None else secrets.token_hex(4),
        )

    # ---------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        """Where we are, the question, its choices, the answer so far, the feedback."""
        if self.quiz_topic is not None:
            self.sub_title = f"Quiz · {self.quiz_topic.number}. {self.quiz_topic.title}"
        else:
            self.sub_title = "Review of due questions"
        yield TitleBar()
        with Horizontal(id="bar"):
            yield Static(id="where")
            yield Static(id="score")
        with VerticalScroll(id="body"):
            yield Markdown(id="prompt")
            yield Static(id="choices")
            yield Static(id="answer")
            with VerticalScroll(id="feedback"):
                yield Markdown(id="explanation")
            yield Static(id="next-key")
        yield KeyBar()

    async def on_mount(self) -> None:
        """Open the attempt (a quiz), then show the first question."""
        if not self.items:
            self.notify("This quiz has no questions yet.", severity="warning")
            self.dismiss()
            return
        if self.quiz_topic is not None:
            from sdtutor.progress.store import ProgressStore

            try:
                with ProgressStore() as store:
                    self.attempt_id = store.start_quiz(self.quiz_topic.slug, len(self.items))
            except Exception as error:  # a dialog, never a traceback
                self.dismiss()
                self.app.report(error, "Cannot start the quiz")  # type: ignore[attr-defined]
                return
            self.seed = self.attempt_id
        self.query_one("#body").focus()
        await self.show_question()

    async def show_question(self) -> None:
        """Draw the current question, its choices shuffled for this attempt."""
        topic, question = self.items[self.index]
        self.shown = shuffled(question, self.seed)
        self.typed = ""
        self.graded = None
        origin = f" · {topic.slug}" if self.quiz_topic is None else ""
        self.query_one("#where", Static).update(
            f"{self.title_text} {self.index + 1} of {len(self.items)} "
            f"({KINDS[question.type]}{origin})"
        )
        self._score()
        await self.query_one("#prompt", Markdown).update(self.shown.prompt)
        self.query_one("#feedback").display = False
        self.query_one("#next-key", Static).update("")
        self._draw_choices()
        self._draw_answer()
        self.query_one("#body", VerticalScroll).scroll_home(animate=False)

    def _score(self) -> None:
        right = sum(g.correct for _, g in self.results)
        score = Text()
        if self.results:
            score.append(f"{right} of {len(self.results)} right", style="green")
        self.query_one("#score", Static).update(score)

    def _draw_choices(self) -> None:
        # A grid, so a long choice wraps under its own text, not under its letter.
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column()
        q = self.shown
        for letter, choice in zip(LETTERS, q.choices, strict=False):
            picked = letter in self.typed
            head = Text(f"{letter})", style="bold")
            if q.type == "multiple":
                head.append(" [x]" if picked else " [ ]", style="bold cyan" if picked else "dim")
            elif q.type == "order":
                head.append(f" {self.typed.index(letter) + 1}." if picked else "   ", "bold cyan")
            grid.add_row(head + " ", Text(choice, style="bold" if picked else ""))
        self.query_one("#choices", Static).update(grid)
        self.query_one("#choices").display = bool(q.choices)

    def _draw_answer(self, problem: str = "") -> None:
        q = self.shown
        out = Text(prompt_for(q), style="bold")
        if self.typed:
            label = {"numeric": "Answer", "multiple": "Selected", "order": "Order"}.get(q.type)
            if label:
                shown = {
                    "multiple": " ".join(sorted(self.typed)),
                    "order": " → ".join(self.typed),
                }.get(q.type, self.typed)
                out.append(f"\n{label}: ", style="bold")
                out.append(shown, style="cyan")
        if problem:
            out.append(f"\n{problem}", style="yellow")
        self.query_one("#answer", Static).update(out)

    # ---------------------------------------------------------------- keys

    async def on_key(self, event: events.Key) -> None:
        """Answer keys while a question is open; any of Enter, space, n or → moves on."""
        if self.done:
            if event.key in ("enter", "space"):
                event.stop()
                self.dismiss()
            return
        key = event.key
        if self.graded is not None:
            if key in ("enter", "space", "n", "right"):
                event.stop()
                await self.next_question()
            return
        q = self.shown
        handled = True
        if q.type in ("single", "truefalse"):
            char = (event.character or "").lower()
            valid = LETTERS[: len(q.choices)] if q.type == "single" else "tf"
            if len(char) == 1 and char in valid:
                await self.submit(char)
            else:
                handled = False
        elif key == "enter":
            if self.typed:
                await self.submit(self.typed)
            else:
                self._draw_answer("Type your answer first.")
        elif key == "backspace":
            self.typed = self.typed[:-1]
            self._draw_choices()
            self._draw_answer()
        elif q.type == "numeric":
            char = event.character or ""
            if len(char) == 1 and char in NUMERIC_KEYS:
                self.typed += char
                self._draw_answer()
            else:
                handled = False
        else:
            char = (event.character or "").lower()
            if len(char) == 1 and char in LETTERS[: len(q.choices)]:
                if q.type == "order":
                    if char not in self.typed:
                        self.typed += char
                else:  # multiple: a second press takes a letter back
                    self.typed = (
                        self.typed.replace(char, "") if char in self.typed else (self.typed + char)
                    )
                self._draw_choices()
                self._draw_answer()
            else:
                handled = False
        if handled:
            event.stop()
            event.prevent_default()

    async def submit(self, response: str) -> None:
        """Grade, record and schedule the answer, then show the explanation."""
        from sdtutor.progress.store import ProgressStore
        from sdtutor.review import describe_wait, record

        topic, original = self.items[self.index]
        try:
            graded = grade(self.shown, response)
        except BadResponse as problem:
            self._draw_answer(str(problem))
            return
        try:
            with ProgressStore() as store:
                store.record_answer(
                    self.attempt_id,
                    topic.slug,
                    original.id,
                    original_letters(original, self.shown, graded.response),
                    graded.correct,
                )
                due = record(store, topic.slug, original.id, graded.correct)
        except Exception as error:  # a dialog, never a traceback
            self.app.report(error, "Your answer was not saved")  # type: ignore[attr-defined]
            return
        self.graded = graded
        self.results.append((topic, graded))
        self._score()
        self._draw_choices()
        answer = self.query_one("#answer", Static)
        given = Text("Your answer: ", style="bold")
        given.append(graded.response)
        answer.update(given)
        box = self.query_one("#feedback", VerticalScroll)
        box.set_class(not graded.correct, "wrong")
        box.border_title = "✓ Right." if graded.correct else "✗ Not quite."
        box.border_subtitle = f"back for review {describe_wait(due)}"
        explanation = relettered(self.shown.explanation, original, self.shown)
        if not graded.correct:
            explanation = f"**The answer: {graded.right_answer}**\n\n{explanation}"
        await self.query_one("#explanation", Markdown).update(explanation)
        box.display = True
        last = self.index == len(self.items) - 1
        self.query_one("#next-key", Static).update(
            Text.assemble(
                ("Enter", "bold"),
                " see the summary" if last else " next question",
                "   ",
                ("Esc", "bold"),
                " stop",
            )
        )
        self.call_after_refresh(self._scroll_to_feedback)

    def _scroll_to_feedback(self) -> None:
        body = self.query_one("#body", VerticalScroll)
        body.scroll_to_widget(self.query_one("#answer"), animate=False, top=True)

    async def next_question(self) -> None:
        """The next question, or the summary after the last."""
        if self.index < len(self.items) - 1:
            self.index += 1
            await self.show_question()
        else:
            await self.finish()

    async def finish(self) -> None:
        """Close the attempt and show the score, the ideas to revisit and what to re-read."""
        from sdtutor.progress.store import ProgressStore

        self.done = True
        if self.attempt_id is not None:
            try:
                with ProgressStore() as store:
                    store.finish_quiz(self.attempt_id)
            except Exception as error:  # a dialog, never a traceback
                self.app.report(error, "The quiz result was not saved")  # type: ignore[attr-defined]
        summary = summarise([g for _, g in self.results])
        lines = [f"**Score: {summary.correct} of {summary.total} ({summary.score:.0%})**"]
        if summary.missed_ideas:
            lines.append("Ideas to revisit: " + "; ".join(summary.missed_ideas[:5]) + ".")
        reread: dict[str, list[str]] = {}
        for topic, graded in self.results:
            section = graded.question.section
            if not graded.correct and section and section not in reread.setdefault(topic.slug, []):
                reread[topic.slug].append(section)
        for slug, sections in reread.items():
            if sections:
                lines.append(
                    f"Re-read in the {slug} lesson: " + ", ".join(f"*{s}*" for s in sections) + "."
                )
        if summary.missed_ideas:
            lines.append("Missed questions come back for review within minutes; the rest later.")
        else:
            lines.append("Every answer right.")
        self.query_one("#where", Static).update(
            "Quiz finished" if self.quiz_topic is not None else "Review finished"
        )
        self._score()
        await self.query_one("#prompt", Markdown).update("\n\n".join(lines))
        self.query_one("#choices").display = False
        self.query_one("#answer", Static).update("")
        self.query_one("#feedback").display = False
        self.query_one("#next-key", Static).update(
            Text.assemble(("Enter", "bold"), " back to the course map")
        )
        self.query_one("#body", VerticalScroll).scroll_home(animate=False)

    def action_stop(self) -> None:
        """Leave; every answer given so far is already saved."""
        if self.results and not self.done:
            self.notify("Stopped; the answers so far are saved.")
        self.dismiss()


__all__ = ["QuizScreen", "prompt_for"]
