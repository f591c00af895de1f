"""A lab: the task, its services and their state, and start / check / hint / watch /
reset / stop as keys.

Everything that talks to a server (start, check, reset, stop, probing the services) runs
in a thread worker, so the screen keeps drawing and answering keys meanwhile.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Markdown, Static, TabbedContent, TabPane
from textual.worker import Worker, get_current_worker

from sdtutor.content.models import LabSpec
from sdtutor.lab.results import CheckResult
from sdtutor.topics import Topic
from sdtutor.tui.dialogs import ConfirmScreen, MessageScreen
from sdtutor.tui.evidence import check_results
from sdtutor.tui.keybar import KeyBar
from sdtutor.tui.titlebar import TitleBar

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
WATCH_INTERVAL = 1.0  # seconds between looks at the workspace's files
SKIPPED_PARTS = (".sdtutor-backup", "__pycache__", ".git")


def hide_password(url: str) -> str:
    """The URL with its password as •••."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{name}:•••@{host}"))


def workspace_files(workspace: Path) -> dict[str, float]:
    """Each file in the workspace and when it last changed (what watch mode compares)."""
    out = {}
    for path in workspace.rglob("*"):
        if any(part in SKIPPED_PARTS for part in path.parts):
            continue
        try:
            if path.is_file():
                out[str(path)] = path.stat().st_mtime
        except OSError:
            continue  # removed while we looked
    return out


def solution_markdown(files: list[tuple[str, str]]) -> str:
    """The solution's files as Markdown: each file's name, then its text as code."""
    if not files:
        return "*This lab has no reference solution.*"
    parts = ["One way to pass every check; yours may differ and still be right.\n"]
    for name, text in files:
        language = Path(name).suffix.lstrip(".") or "text"
        fence = "````" if "```" in text else "```"
        parts.append(f"**{name}**\n\n{fence}{language}\n{text.rstrip()}\n{fence}\n")
    return "\n".join(parts)


class LabScreen(Screen[None]):
    """One lab, driven by keys."""

    DEFAULT_CSS = """
    LabScreen #bar {
        height: 1;
        padding: 0 1;
        background: $boost;
    }
    LabScreen TabbedContent {
        height: 1fr;
    }
    LabScreen TabPane {
        padding: 0;
    }
    LabScreen .pane {
        height: 1fr;
        padding: 0 1;
    }
    LabScreen #task Markdown {
        margin: 0;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "start", "Start"),
        Binding("c", "check", "Check"),
        Binding("h", "hint", "Hint"),
        Binding("w", "watch", "Watch"),
        Binding("r", "reset", "Reset"),
        Binding("x", "stop", "Stop"),
        Binding("v", "solution", "Solution"),  # shown once the lab has passed
        Binding("u", "reveal", "Show passwords", show=False),
        Binding("1", "tab('task')", "Task", show=False),
        Binding("2", "tab('services')", "Services", show=False),
        Binding("3", "tab('checks')", "Checks", show=False),
        Binding("escape", "back", "Map"),
    ]

    def __init__(self, topic: Topic, lab: LabSpec, autostart: bool = False) -> None:
        super().__init__()
        self.topic = topic
        self.lab = lab
        self.autostart = autostart
        self.busy: str | None = None  # what a worker is doing now (start, reset, ...)
        self.progress_text = ""
        self.status = "unknown"  # not started | running | stopped | unknown
        self.info: dict[str, Any] = {}
        self.states: dict[str, bool] = {}
        self.results: list[CheckResult] | None = None
        self.passed = False  # whether this lab has ever passed (the solution opens then)
        self.checked_at = ""
        self.reveal = False
        self.watcher: Worker[None] | None = None
        self.masks: list[tuple[str, str]] = []  # (text, shown as): tests hide random ids
        self._check_lock = threading.Lock()
        self._frame = 0

    # ---------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        """The state line, then the task, the services and the checks as tabs."""
        self.sub_title = f"Lab · {self.topic.number}. {self.lab.title}"
        yield TitleBar()
        yield Static(id="bar")
        with TabbedContent(initial="task"):
            with TabPane("1 Task", id="task"), VerticalScroll(classes="pane"):
                yield Markdown(id="readme")
            with TabPane("2 Services", id="services"), VerticalScroll(classes="pane"):
                yield Static(id="services-text")
            with (
                TabPane("3 Checks", id="checks"),
                VerticalScroll(classes="pane", id="checks-scroll"),
            ):
                yield Static(id="results")
        yield KeyBar()

    async def on_mount(self) -> None:
        """Show the task and what is known; probe the services in the background."""
        try:
            readme = self.lab.readme.read_text(encoding="utf-8")
        except OSError as exc:
            readme = f"*The task cannot be read: {exc}*"
        await self.query_one("#readme", Markdown).update(readme)
        self.draw()
        self.set_interval(0.1, self._spin)
        self.refresh_state(start_after=self.autostart)

    def _mask(self, text: str) -> str:
        for secret, shown in self.masks:
            text = text.replace(secret, shown)
        return text

    def draw(self) -> None:
        """Redraw the state line, the services and the results."""
        self._draw_bar()
        self.query_one("#services-text", Static).update(self._services())
        self.query_one("#results", Static).update(self._results())

    def _draw_bar(self) -> None:
        out = Text()
        if self.busy:
            out.append(SPINNER[self._frame % len(SPINNER)] + " ", style="bold cyan")
            out.append(self.progress_text or f"{self.busy.capitalize()}…")
        else:
            style = {"running": "bold green", "stopped": "bold red"}.get(self.status, "bold")
            out.append("● " if self.status == "running" else "○ ", style=style)
            out.append(self.status, style=style)
            if self.info.get("provider"):
                out.append(f" · {self.info['provider']} provider", style="dim")
            if self.status == "not started":
                out.append(" · press s to start it", style="dim")
            if self.results is not None and self.status == "running":
                passed = sum(r.passed for r in self.results)
                done = passed == len(self.results)
                out.append(" · ")
                out.append(
                    "lab passed" if done else f"{passed} of {len(self.results)} checks pass",
                    style="bold green" if done else "yellow",
                )
        if self.watching:
            out.append(" · watching your files", style="bold magenta")
        self.query_one("#bar", Static).update(out)

    def _spin(self) -> None:
        if self.busy:
            self._frame += 1
            self._draw_bar()

    def _services(self) -> RenderableType:
        if self.status == "not started" or not self.info.get("services"):
            out = Text()
            if self.status == "unknown":
                out.append("Looking at the lab's services…", style="dim")
                return out
            out.append("The lab is not running.", style="bold")
            out.append(" Press ")
            out.append("s", style="bold cyan")
            out.append(
                " to start its services, seed their data and make a workspace "
                "with the task.\n\nIt needs: "
            )
            out.append(", ".join(f"{i.name} ({i.kind})" for i in self.lab.instances))
            if self.info.get("workspace"):
                out.append("\nYour workspace from before: ")
                out.append(self._mask(str(self.info["workspace"])), style="bold")
            return out
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column()
        grid.add_row(
            "Workspace", Text(self._mask(str(self.info.get("workspace", ""))), style="bold")
        )
        grid.add_row("", Text("Edit the files there, then press c to check.", style="dim"))
        grid.add_row("Provider", str(self.info.get("provider", "")))
        for name, svc in self.info["services"].items():
            up = self.states.get(name)
            state = Text("● running", style="green") if up else Text("○ not answering", style="red")
            url = svc["url"] if self.reveal else hide_password(svc["url"])
            grid.add_row(name, Text(f"{svc.get('kind', '')}  ") + state)
            grid.add_row("", Text(self._mask(url), style="cyan", overflow="fold"))
            if svc.get("prefix"):
                grid.add_row("", Text(f"your names start with {self._mask(svc['prefix'])}"))
        tips = Text("\n")
        tips.append("u", style="bold cyan")
        tips.append(" shows the passwords" if not self.reveal else " hides the passwords")
        tips.append(f".  A shell on a service: sdtutor lab shell {self.topic.slug}", style="")
        if self.status == "stopped":
            tips.append(
                "\nThe services are not answering: press s to bring them back "
                "with your work intact.",
                style="yellow",
            )
        return Group(grid, tips)

    def _results(self) -> RenderableType:
        if self.results is None:
            out = Text("No checks run yet. ", style="dim")
            out.append("Press c to check your work, or w to check it each time you save a file.")
            return out
        head = Text(f"Checked at {self.checked_at}\n", style="dim")
        return Group(head, check_results(self.results))

    # ---------------------------------------------------------------- workers

    def _ui(self, callback: Any, *args: Any) -> None:
        """Run on the UI thread from a worker; nothing if the app has gone meanwhile."""
        with contextlib.suppress(RuntimeError):
            self.app.call_from_thread(callback, *args)

    def _begin(self, what: str) -> bool:
        if self.busy:
            self.notify(f"Wait a moment: {self.busy} is still running.", severity="warning")
            return False
        self.busy = what
        self.progress_text = ""
        self._draw_bar()
        return True

    def _end(self) -> None:
        self.busy = None
        self.progress_text = ""
        self.draw()

    def _progress(self, step: str, fraction: float | None = None) -> None:
        """The provisioning steps, from a worker thread, on the state line."""
        text = step + (f" {fraction:.0%}" if fraction is not None else "")
        self._ui(self._set_progress, text)

    def _set_progress(self, text: str) -> None:
        self.progress_text = text
        self._draw_bar()

    def _failed(self, error: BaseException, title: str) -> None:
        self.app.report(error, title)  # type: ignore[attr-defined]

    @work(thread=True, group="probe")
    def refresh_state(self, start_after: bool = False) -> None:
        """Read the lab's state and probe each of its services."""
        from sdtutor.lab import runtime
        from sdtutor.lab import state as lab_state_file
        from sdtutor.progress.store import ProgressStore
        from sdtutor.services import kind

        try:
            info = runtime.info(self.topic)
            with ProgressStore() as store:
                passed = store.lab_passed(self.topic.slug)
            states = {}
            saved = lab_state_file.load(self.topic.slug)
            if saved is not None:
                for name, access in saved.access.items():
                    endpoint = saved.endpoints.get(name)
                    states[name] = bool(endpoint and kind(endpoint.service).probe(access.url))
        except Exception as error:  # shown as a dialog, never a traceback
            self._ui(self._failed, error, "Cannot read the lab's state")
            return
        self._ui(self._state_read, info, states, passed, start_after)

    def _state_read(
        self, info: dict[str, Any], states: dict[str, bool], passed: bool, start: bool
    ) -> None:
        self.info, self.states = info, states
        self._set_passed(passed)
        self.status = str(info.get("status", "unknown"))
        self.draw()
        if start and self.status != "running":
            self.action_start()

    @work(thread=True, group="lab")
    def _run_start(self) -> None:
        from sdtutor.lab import runtime

        try:
            _state, fresh, notes = runtime.start(
                self.topic, self.lab, None, None, progress=self._progress
            )
        except Exception as error:
            self._ui(self._failed, error, "The lab did not start")
        else:
            message = "Read the task, edit the files in your workspace, press c to check."
            self._ui(self._done, "Lab started" if fresh else "Lab resumed", message, notes)
        finally:
            self._ui(self._end)
            self._ui(self.refresh_state)

    def _done(self, title: str, message: str, notes: list[str] | None = None) -> None:
        self.notify("\n".join([message, *(notes or [])]), title=title, timeout=8)

    @work(thread=True, group="lab")
    def _run_reset(self) -> None:
        from sdtutor.lab import runtime

        try:
            _state, backup = runtime.reset(self.topic, self.lab, progress=self._progress)
        except Exception as error:
            self._ui(self._failed, error, "The lab was not reset")
        else:
            note = f"Your previous files are in {backup}" if backup else ""
            self._ui(
                self._done,
                "Lab reset",
                "The data and the files are back at the start.",
                [note] if note else [],
            )
            self._ui(self._clear_results)
        finally:
            self._ui(self._end)
            self._ui(self.refresh_state)

    def _clear_results(self) -> None:
        self.results = None
        self.draw()

    @work(thread=True, group="lab")
    def _run_stop(self) -> None:
        from sdtutor.lab import runtime

        try:
            stopped = runtime.stop(self.topic, self.lab)
        except Exception as error:
            self._ui(self._failed, error, "The lab did not stop cleanly")
        else:
            if stopped:
                self._ui(
                    self._done,
                    "Lab stopped",
                    "What it created is removed; your workspace is still there.",
                )
            else:
                self._ui(self._done, "Nothing to stop", "The lab was not running.")
        finally:
            self._ui(self._end)
            self._ui(self.refresh_state)

    def _check_now(self) -> bool:
        """Run the checks (in a worker thread) and show them; False if they could not run."""
        from sdtutor.lab import runtime

        with self._check_lock:
            self._ui(self._set_checking, True)
            try:
                results = runtime.check(self.topic, self.lab)
            except Exception as error:
                self._ui(self._failed, error, "The checks could not run")
                return False
            finally:
                self._ui(self._set_checking, False)
        self._ui(self._show_results, results)
        return True

    def _set_checking(self, on: bool) -> None:
        if on:
            self.busy = "check"
            self.progress_text = "Checking (reading the catalog and the plans)…"
            self._draw_bar()
        else:
            self._end()

    @work(thread=True, group="check")
    def _run_check(self) -> None:
        self._check_now()

    def _show_results(self, results: list[CheckResult]) -> None:
        was_passed = self.results is not None and all(r.passed for r in self.results)
        self.results = results
        self.checked_at = time.strftime("%H:%M:%S")
        self.draw()
        self.query_one(TabbedContent).active = "checks"
        self.query_one("#checks-scroll", VerticalScroll).scroll_home(animate=False)
        if all(r.passed for r in results):
            self._set_passed(True)
            if not was_passed:
                self.notify(
                    "Press v to see the reference solution and compare it with yours.",
                    title="Lab passed",
                    timeout=8,
                )

    def _set_passed(self, passed: bool) -> None:
        if passed != self.passed:
            self.passed = passed
            self.refresh_bindings()  # v appears in the key bar

    @work(thread=True, group="watch", exclusive=True)
    def _watch(self) -> None:
        """Re-check whenever a workspace file changes, until cancelled."""
        worker = get_current_worker()
        workspace = Path(str(self.info.get("workspace", "")))
        seen: dict[str, float] | None = None
        while not worker.is_cancelled:
            if self.busy in ("start", "reset", "stop"):
                time.sleep(0.1)  # not while the lab itself changes
                continue
            current = workspace_files(workspace)
            if current != seen:
                seen = current
                if not self._check_now():
                    self._ui(self._watch_stopped)
                    return
            # Short sleeps, so turning watch off takes effect at once.
            for _ in range(int(WATCH_INTERVAL / 0.1)):
                if worker.is_cancelled:
                    return
                time.sleep(0.1)

    def _watch_stopped(self) -> None:
        self.watcher = None
        self._draw_bar()

    @property
    def watching(self) -> bool:
        """Whether watch mode is on."""
        return self.watcher is not None and not self.watcher.is_finished

    # ---------------------------------------------------------------- actions

    def _require_running(self, what: str) -> bool:
        if self.status in ("not started", "unknown"):
            self.notify(f"Start the lab first (press s), then {what}.", severity="warning")
            return False
        return True

    def action_start(self) -> None:
        """Start the lab (or bring a stopped one back)."""
        if self.status == "running" and not self.busy:
            self.notify("The lab is already running.")
            return
        if self._begin("start"):
            self.progress_text = "Starting the lab's services…"
            self._run_start()

    def action_check(self) -> None:
        """Check the work now."""
        if not self._require_running("check your work"):
            return
        if self.busy:
            self.notify(f"Wait a moment: {self.busy} is still running.", severity="warning")
            return
        self.busy = "check"  # at once, so a start or reset cannot slip in before it
        self._run_check()

    def action_hint(self) -> None:
        """One more hint each press (the last one repeats)."""
        from sdtutor.lab import runtime

        try:
            hint = runtime.next_hint(self.topic, self.lab)
        except Exception as error:  # a dialog, never a traceback
            self._failed(error, "No hint")
            return
        more = "Enter to close" + ("" if hint.number == hint.total else "; h again: the next")
        self.app.push_screen(MessageScreen(f"Hint {hint.number} of {hint.total}", hint.text, more))

    def action_watch(self) -> None:
        """Turn watch mode on or off."""
        if self.watching:
            assert self.watcher is not None
            self.watcher.cancel()
            self.watcher = None
            self.notify("Stopped watching your files.")
            self._draw_bar()
            return
        if not self._require_running("watch your files"):
            return
        self.watcher = self._watch()
        self.notify(
            "Your work is checked each time a file in the workspace changes.", title="Watching"
        )
        self._draw_bar()

    def action_reset(self) -> None:
        """Back to the starting state, after a yes."""
        if not self._require_running("reset it"):
            return

        def answered(yes: bool | None) -> None:
            if yes and self._begin("reset"):
                self._run_reset()

        self.app.push_screen(
            ConfirmScreen(
                "Reset the lab?",
                "The data goes back to its seeded state and the workspace to its starting "
                "files; your changed files are copied to .sdtutor-backup/ first.",
            ),
            answered,
        )

    def action_stop(self) -> None:
        """Remove what the lab created (the workspace stays)."""
        if self.status == "not started":
            self.notify("The lab is not running; nothing to stop.")
            return
        if self.watching:
            self.action_watch()
        if self._begin("stop"):
            self.progress_text = "Stopping the lab…"
            self._run_stop()

    def action_reveal(self) -> None:
        """Show or hide the passwords in the service URLs."""
        self.reveal = not self.reveal
        self.draw()
        self.query_one(TabbedContent).active = "services"

    def action_tab(self, tab: str) -> None:
        """Switch to a tab."""
        self.query_one(TabbedContent).active = tab

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The solution's key exists only once the lab has passed."""
        if action == "solution":
            return self.passed
        return True

    def action_solution(self) -> None:
        """The reference solution's files, to compare with the learner's own."""
        from sdtutor.lab import runtime

        try:
            files = runtime.solution_files(self.topic, self.lab)
        except Exception as error:  # a dialog, never a traceback
            self._failed(error, "No solution yet")
            return
        self.app.push_screen(
            MessageScreen(
                f"Reference solution · {self.lab.title}",
                solution_markdown(files),
                "Enter to close; ↑/↓ scroll",
                wide=True,
            )
        )

    def action_back(self) -> None:
        """Back to the course map (the lab keeps running; watch mode stops)."""
        if self.watcher is not None:
            self.watcher.cancel()
        self.dismiss()


__all__ = ["LabScreen", "hide_password", "solution_markdown", "workspace_files"]
