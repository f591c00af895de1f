"""`sdtutor lab ...`: start, info, check, hint, solution, watch, shell, reset, stop."""

import importlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from sdtutor.topics import Topic

if TYPE_CHECKING:
    from sdtutor.content.models import LabSpec

app = typer.Typer(
    help="Hands-on labs on real services: start one, work in its workspace, check it.",
    no_args_is_help=True,
)

TOPIC_ARG = typer.Argument(..., help="Number, slug or unambiguous prefix (7, indexing, index).")


def _topic(arg: str) -> Topic:
    from sdtutor.topics import resolve

    return resolve(arg)


def _lab(topic: Topic):  # type: ignore[no-untyped-def]
    from sdtutor.content.course import Course

    return Course().lab(topic)


class _Progress:
    """Shows provisioning steps: a spinner and, where the fraction is known, a bar.

    Quick work shows no live display at all: steps are remembered and printed as done at
    the end. The display starts at the first step with a fraction (a seed, a pull) or
    when a step has run for `delay` seconds. Meanwhile a thread imports what the command
    needs afterwards (`preload`): the main thread mostly waits on a server then, so the
    imports cost no time (`lab reset` is a ~0.15 s copy; rich.progress alone takes 40 ms).
    """

    def __init__(self, preload: tuple[str, ...] = (), delay: float = 0.4) -> None:
        self.lock = threading.RLock()
        self.steps: list[str] = []
        self.fraction: float | None = None
        self.progress: Any = None
        self.task: Any = None
        self.closed = False
        self.preload = preload
        self.delay = delay
        self.timer: threading.Timer | None = None

    def __call__(self, step: str, fraction: float | None = None) -> None:
        with self.lock:
            if not self.steps:
                self._preload(*self.preload)
            if fraction is not None and self.fraction is None:
                # Steps with a fraction are the server working: import the Markdown
                # renderer (~150 ms) for the task text meanwhile, not after.
                self._preload("rich.markdown")
            if not self.steps or step != self.steps[-1]:
                self.steps.append(step)
                if self.progress is not None and len(self.steps) > 1:
                    self.progress.console.print(f"[green]✓[/] {self.steps[-2]}")
            self.fraction = fraction
            if self.progress is None and fraction is not None:
                self._show()
            elif self.progress is None:
                if self.timer is None:
                    self.timer = threading.Timer(self.delay, self._show)
                    self.timer.daemon = True
                    self.timer.start()
            else:
                self.progress.update(self.task, description=step, completed=fraction or 0.0)

    @staticmethod
    def _preload(*modules: str) -> None:
        for module in modules:
            threading.Thread(target=importlib.import_module, args=(module,), daemon=True).start()

    def _show(self) -> None:
        """Start the live display at the current step (main thread or the timer's)."""
        with self.lock:
            if self.progress is not None or self.closed:
                return
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

            from sdtutor.cli.ui import stderr_console

            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                console=stderr_console(),
                transient=True,  # it ends as a list of ✓ lines, like quick work
            )
            for done in self.steps[:-1]:
                self.progress.console.print(f"[green]✓[/] {done}")
            self.task = self.progress.add_task(
                self.steps[-1], total=1.0, completed=self.fraction or 0.0
            )
            self.progress.start()

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.closed = True
            if self.timer is not None:
                self.timer.cancel()
            if self.progress is not None:
                self.progress.stop()
                shown = self.steps[-1:]  # the earlier ones were printed as they ended
            else:
                shown = self.steps
            if shown:
                from sdtutor.cli.ui import stderr_console

                # The step that was running when it failed gets the cross.
                marks = ["[green]✓[/]"] * len(shown)
                if exc[0] is not None:
                    marks[-1] = "[red]✗[/]"
                for mark, step in zip(marks, shown, strict=True):
                    stderr_console().print(f"{mark} {step}")
        if self.timer is not None:
            self.timer.join()  # cancelled: it ends at once, or sees `closed` and returns


def _shell_blurb(lab: "LabSpec") -> str | None:
    """What `lab shell` opens for this lab, in a few words (None: the lab has no server)."""
    from sdtutor.services import kind

    if not lab.instances:
        return None
    if len(lab.instances) == 1:
        return kind(lab.instances[0].kind).shell_blurb
    names = [i.name for i in lab.instances]
    return f"a prompt on {', '.join(names[:-1])} or {names[-1]}"


def do_start(topic: Topic, provider: str | None, workspace: Path | None) -> None:
    """Start a lab and say what to do next."""
    from sdtutor.cli.ui import console
    from sdtutor.lab import runtime

    lab = _lab(topic)
    with _Progress(preload=("rich.panel",)) as progress:
        lab_state, fresh, notes = runtime.start(topic, lab, provider, workspace, progress)
    from rich.panel import Panel

    readme = Path(lab_state.workspace) / "README.md"
    blurb = _shell_blurb(lab)
    shell = f"  sdtutor lab shell {topic.slug}     {blurb}\n" if blurb else ""
    if fresh:
        from rich.markdown import Markdown  # ~120 ms: only when the task is shown

        console.print(Markdown(readme.read_text(encoding="utf-8")))
    console.print(
        Panel(
            f"[bold]{lab.title}[/] is {'ready' if fresh else 'running again'} "
            f"(provider: {lab_state.provider}).\n\n"
            f"Workspace: [bold]{lab_state.workspace}[/]\n\n"
            f"{shell}"
            f"  sdtutor lab check {topic.slug}     check your work (as often as you like)\n"
            f"  sdtutor lab hint {topic.slug}      one more hint\n"
            f"  sdtutor lab stop {topic.slug}      remove what the lab created",
            title="Lab started" if fresh else "Lab resumed",
            title_align="left",
            border_style="green",
        )
    )
    for note in notes:
        console.print(note)
    # Outside the panel and never wrapped, so the URL can be copied whole.
    for name, access in lab_state.access.items():
        console.print(f"{name}: {access.url}", soft_wrap=True)
        if access.prefix:
            console.print(f"  (your names start with {access.prefix})", soft_wrap=True)
        if access.note:
            console.print(f"  [yellow]{access.note}[/]")


@app.command("start")
def start(
    topic: str = TOPIC_ARG,
    provider: str = typer.Option(
        None,
        "--provider",
        "-p",
        help="docker, local or external (default: SDTUTOR_PROVIDER, "
        "else docker when an engine answers, else local).",
    ),
    workspace: Path = typer.Option(None, "--workspace", "-w", help="Where the lab's files go."),
) -> None:
    """Start a lab: its services, its seeded data and a workspace with the task."""
    do_start(_topic(topic), provider, workspace)


@app.command("info")
def info(
    topic: str = TOPIC_ARG,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts and graders."),
) -> None:
    """Show a lab's status, provider, workspace and service URLs."""
    from sdtutor.cli.ui import console, dump_json
    from sdtutor.lab import runtime

    data = runtime.info(_topic(topic))
    if as_json:
        dump_json(data)
        return
    console.print(f"[bold]{data['topic']}[/]: {data['status']}")
    if data["provider"]:
        console.print(f"provider:  {data['provider']}")
    if data["workspace"]:
        console.print(f"workspace: {data['workspace']}")
    for name, svc in data["services"].items():
        console.print(f"{name}: {svc['url']}", soft_wrap=True)
        if svc.get("prefix"):
            console.print(f"  (your names start with {svc['prefix']})", soft_wrap=True)
        for variable, value in svc.get("env", {}).items():
            if value != svc.get("prefix"):  # the prefix is said just above
                console.print(f"  {variable}={value}", soft_wrap=True)
    if data["status"] == "stopped":
        console.print(
            f"Its services are not answering: `sdtutor lab start {data['topic']}` "
            "brings them back with your work intact."
        )


@app.command("check")
def check(
    topic: str = TOPIC_ARG,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts and graders."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show evidence for passes too."),
) -> None:
    """Check your work. Exit 0: all checks pass; 1: some fail; 2: cannot run."""
    from sdtutor.cli import render
    from sdtutor.cli.ui import console, dump_json
    from sdtutor.lab import runtime

    t = _topic(topic)
    lab = _lab(t)
    runtime.require_state(t)  # "not running" before any spinner
    if as_json:
        results = runtime.check(t, lab)
    else:
        with console.status("Checking (reading the catalog and the plans)..."):
            results = runtime.check(t, lab)
    passed = all(r.passed for r in results)
    if as_json:
        dump_json({"topic": t.slug, "passed": passed, "checks": [r.to_json() for r in results]})
    else:
        console.print(render.check_results(results, verbose, topic=t.slug))
        if passed:
            console.print(
                f"[bold green]Lab passed.[/] `sdtutor lab solution {t.slug}` shows "
                "the reference solution to compare with yours."
            )
    if not passed:
        raise typer.Exit(1)


@app.command("hint")
def hint(
    topic: str = TOPIC_ARG,
    show_all: bool = typer.Option(
        False, "--all", "-a", help="Show the hints given so far again (no new one)."
    ),
) -> None:
    """Show the next hint (one more each call)."""
    from rich.markdown import Markdown  # hints hold inline code: render it as code
    from rich.panel import Panel

    from sdtutor.cli.ui import console
    from sdtutor.lab import runtime

    t = _topic(topic)
    lab = _lab(t)
    if show_all:
        given = runtime.hints_given(t, lab)
        if not given:
            console.print(f"No hints given yet: `sdtutor lab hint {t.slug}` shows the first.")
            return
    else:
        given = [runtime.next_hint(t, lab)]
    for h in given:
        last = h is given[-1]
        more = f"`sdtutor lab hint {t.slug}` for the next" if last and h.number < h.total else None
        console.print(
            Panel(
                Markdown(h.text),
                title=f"Hint {h.number} of {h.total}",
                title_align="left",
                subtitle=more,
                border_style="cyan",
            )
        )


@app.command("solution")
def solution(topic: str = TOPIC_ARG) -> None:
    """Show the reference solution, once the lab has passed."""
    from sdtutor.cli.ui import console
    from sdtutor.lab import runtime

    t = _topic(topic)
    files = runtime.solution_files(t, _lab(t))
    if not console.is_terminal:
        # Piped or redirected: the files byte for byte (no wrapping, no colour), each
        # under a `==> name <==` line as head(1) prints them.
        import sys

        for i, (name, text) in enumerate(files):
            sys.stdout.write(f"{chr(10) if i else ''}==> {name} <==\n{text}")
            if not text.endswith("\n"):
                sys.stdout.write("\n")
        sys.stdout.flush()
        return
    from rich.syntax import Syntax

    for name, text in files:
        lexer = {".py": "python", ".sql": "sql"}.get(Path(name).suffix, "text")
        console.rule(f"[bold]{name}[/]", align="left")
        console.print(Syntax(text, lexer, word_wrap=True))


@app.command("watch")
def watch(
    topic: str = TOPIC_ARG,
    interval: float = typer.Option(1.0, help="Seconds between looks at the workspace."),
) -> None:
    """Re-check whenever a workspace file changes (Ctrl-C to stop).

    A changed apply-file (indexes.sql in the indexing lab) is applied first, to a fresh
    copy of the seeded data, so the database holds what the file says.
    """
    import time

    from sdtutor.cli import render
    from sdtutor.cli.ui import console
    from sdtutor.errors import SdtutorError
    from sdtutor.lab import runtime

    t = _topic(topic)
    lab = _lab(t)
    workspace = Path(runtime.require_state(t).workspace)
    apply_paths = {str(workspace / name) for name in lab.apply}

    def snapshot() -> dict[str, float]:
        return {
            str(p): p.stat().st_mtime
            for p in workspace.rglob("*")
            if p.is_file() and ".sdtutor-backup" not in p.parts and "__pycache__" not in p.parts
        }

    def apply_if_changed(seen: dict[str, float] | None, current: dict[str, float]) -> None:
        """Apply the apply-files when one changed (at the start: when one is edited)."""
        if seen is None:
            if not runtime.edited_apply_files(lab, workspace):
                return
        elif not any(seen.get(p) != current.get(p) for p in apply_paths):
            return
        with console.status("Applying your files to a fresh copy of the seeded data..."):
            applied = runtime.apply_files(t, lab, action="watch")
        for a in applied:
            console.print(a.note(), style=None if a.ok else "yellow")
        console.print("[dim](on a fresh copy of the seeded data: it holds what your files say)[/]")

    seen: dict[str, float] | None = None
    try:
        while True:
            current = snapshot()
            if current != seen:
                console.clear()
                console.print(f"[dim]Watching {workspace} (Ctrl-C to stop)[/]")
                try:
                    apply_if_changed(seen, current)
                    seen = current
                    with console.status("Checking..."):
                        results = runtime.check(t, lab)
                    console.print(render.check_results(results, topic=t.slug))
                except SdtutorError as exc:
                    seen = current
                    console.print(f"[red]{exc.message}[/]")
                    if exc.hint:
                        console.print(exc.hint)
            time.sleep(interval)
    except KeyboardInterrupt:
        console.print("\nStopped watching.")


@app.command("shell")
def shell(
    topic: str = TOPIC_ARG,
    service: str = typer.Argument(
        None, help="Which of the lab's services (default: the first one, e.g. postgres)."
    ),
    file: Path = typer.Option(None, "--file", "-f", help="Apply this file (SQL), then exit."),
    builtin: bool = typer.Option(
        False,
        "--builtin",
        help="Use sdtutor's own prompt or file runner, not psql or redis-cli.",
    ),
) -> None:
    """Open a prompt on one of the lab's services (psql, redis-cli, a RabbitMQ view)."""
    from sdtutor.errors import LabError
    from sdtutor.lab import runtime
    from sdtutor.services import kind

    t = _topic(topic)
    lab_state = runtime.require_state(t)
    names = list(lab_state.access)
    if not names:
        raise LabError(
            f"The {t.slug} lab starts no server: there is nothing to open a prompt on.",
            f"Your files are in {lab_state.workspace}; check them with "
            f"`sdtutor lab check {t.slug}`.",
        )
    chosen = service or names[0]
    if chosen not in lab_state.access:
        # A kind's name also picks its first instance (`lab shell replication postgres`).
        by_kind = [n for n in names if lab_state.endpoints[n].service == chosen]
        if not by_kind:
            raise LabError(
                f"The {t.slug} lab has no {chosen or 'service'} service.",
                f"It has: {', '.join(names) or 'none'}.",
            )
        chosen = by_kind[0]
    access = lab_state.access[chosen]
    service_kind = kind(lab_state.endpoints[chosen].service)
    if file is not None:
        path = file if file.is_absolute() else Path.cwd() / file
        if not path.exists() and (Path(lab_state.workspace) / file).exists():
            path = Path(lab_state.workspace) / file
        lab = _lab(t)
        name = runtime.is_apply_file(lab, lab_state, path) if path.is_file() else None
        if name is None:
            service_kind.run_file(access, path, prefer_native=not builtin)
            return
        _apply_visibly(t, lab, name, path, chosen, prefer_native=not builtin)
        return
    from sdtutor.services import Names, Target

    endpoint = lab_state.endpoints[chosen]
    target = Target(endpoint.url, Names.for_lab(t.slug), chosen, _lab(t), endpoint.handle)
    raise typer.Exit(service_kind.shell(access, prefer_native=not builtin, target=target))


def _apply_visibly(
    t: Topic, lab: "LabSpec", name: str, path: Path, instance: str, prefer_native: bool = True
) -> None:
    """`lab shell -f` of an apply-file: a fresh copy of the seeded data, the lab's other
    apply-files quietly, then this one statement by statement."""
    from sdtutor.cli.ui import console
    from sdtutor.lab import runtime
    from sdtutor.services import kind

    with _Progress() as progress:
        others = runtime.apply_files(t, lab, progress, skip=name)
    console.print(
        f"Applying {name} to a fresh copy of the seeded data, so that the database holds "
        f"what the file says (what you made only in the shell is gone):"
    )
    for applied in others:
        console.print(applied.note(), style=None if applied.ok else "yellow")
    lab_state = runtime.require_state(t)
    endpoint = lab_state.endpoints[instance]
    try:
        kind(endpoint.service).run_file(lab_state.access[instance], path, prefer_native)
    except typer.Exit as exc:
        if exc.exit_code:
            console.print(
                f"Fix that statement in {name} and run `sdtutor lab shell {t.slug} -f {name}` "
                "again: it starts from the seeded data each time."
            )
        raise
    console.print(f"Next: `sdtutor lab check {t.slug}`.")


@app.command("reset")
def reset(
    topic: str = TOPIC_ARG,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    data: bool = typer.Option(
        False, "--data", help="Restore only the data; keep your workspace files as they are."
    ),
) -> None:
    """Back to the starting state: fresh data and starter files (yours are kept aside)."""

    from sdtutor.cli.ui import console, interactive
    from sdtutor.lab import runtime

    t = _topic(topic)
    lab = _lab(t)
    if (
        not yes
        and interactive()
        and not typer.confirm(
            (
                f"Reset the {t.slug} lab? Your files go back to the starter's"
                if not lab.instances
                else f"Reset the {t.slug} lab? The data goes back to its seeded state"
            )
            + (
                "; your files stay as they are."
                if data
                else "; your changed files are copied to .sdtutor-backup/ first."
            ),
            default=False,
        )
    ):
        raise typer.Exit(1)
    with _Progress() as progress:
        lab_state, backup = runtime.reset(t, lab, progress, data_only=data)
    console.print(
        f"[green]The {t.slug} lab is back at its start.[/] Workspace: {lab_state.workspace}"
    )
    if backup:
        console.print(f"Your previous files are in {backup}")


@app.command("stop")
def stop(
    topic: str = typer.Argument(None, help="The lab to stop."),
    all_labs: bool = typer.Option(False, "--all", help="Stop every lab and every sdtutor server."),
    purge: bool = typer.Option(
        False, "--purge", help="Also remove the seeded copy kept to make the next start quick."
    ),
) -> None:
    """Stop a lab and remove what it created (your workspace stays)."""
    from sdtutor.cli.ui import console
    from sdtutor.errors import UsageError
    from sdtutor.lab import runtime
    from sdtutor.topics import resolve

    if all_labs:
        stopped = runtime.stop_all(resolve, _lab)
        console.print("Stopped: " + ", ".join(stopped) if stopped else "Nothing was running.")
        return
    if topic is None:
        raise UsageError(
            "Name the lab to stop, or use --all.", "Example: sdtutor lab stop indexing"
        )
    t = _topic(topic)
    from sdtutor.services import kind

    lab = _lab(t)
    if runtime.stop(t, lab, purge=purge):
        templates = any(kind(i.kind).keeps_template for i in lab.instances)
        kept = (
            " Its seeded data is kept so the next start is quick "
            f"(`sdtutor lab stop {t.slug} --purge` removes it too)."
            if templates and not purge
            else ""
        )
        console.print(
            f"[green]Stopped the {t.slug} lab[/] and removed what it created. "
            f"Your workspace is still there.{kept}"
        )
    else:
        console.print(f"The {t.slug} lab is not running; nothing to stop.")
