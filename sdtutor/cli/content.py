"""`sdtutor content check [PATH]`: lint a course, then prove its labs.

Several labs are proved at once, each in its own process (`content check PATH --no-lint
--lab SLUG`), so one lab's checks.py, services or crash cannot disturb another's; each
lab's output is shown as one block when that lab is done.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from sdtutor.content.models import LabSpec
    from sdtutor.topics import Topic

app = typer.Typer(help="Tools for course authors.", no_args_is_help=True)

STOP_GRACE = 15.0
"""Seconds an interrupted proof gets to remove what it made before it is killed."""


@app.command("check")
def check(
    path: Path = typer.Argument(None, help="A course folder (default: the built-in course)."),
    labs: bool = typer.Option(
        True, "--labs/--no-labs", help="Also prove each lab on real services (slower)."
    ),
    only: list[str] = typer.Option(
        None,
        "--lab",
        "-l",
        metavar="TOPIC",
        help="Prove only this lab (number, slug or prefix); repeat it, or separate with "
        "commas, for several. The whole course is still linted.",
    ),
    lint: bool = typer.Option(
        True, "--lint/--no-lint", help="Lint the course first; --no-lint only proves labs."
    ),
    jobs: int = typer.Option(
        0,
        "--jobs",
        "-j",
        min=0,
        show_default=False,
        help="Labs proved at once, each in its own process (default: one per CPU core).",
    ),
    provider: str = typer.Option(None, "--provider", "-p", help="Provider for the lab proofs."),
    cases: list[str] = typer.Option(
        None,
        "--case",
        "-c",
        metavar="CASE",
        help="Prove only this case of each lab: starter, solution, or a wrong case's name "
        "(as in wrong/NAME); repeat it for several. Handy while writing one wrong case.",
    ),
) -> None:
    """Lint lessons, quizzes and labs; prove each lab's starter, solution and wrong cases."""
    from sdtutor import locations
    from sdtutor.errors import UsageError

    root = (path or locations.course_dir()).resolve()
    wanted = _wanted(only or [], root)
    if wanted and not labs:
        raise UsageError(
            "--lab picks labs to prove, and --no-labs proves none.",
            "Leave out --no-labs to prove the labs you named, or --lab to only lint.",
        )
    if not lint and not labs:
        raise UsageError(
            "--no-lint --no-labs leaves nothing to do.",
            "Drop one of them: --no-labs lints only, --no-lint proves only.",
        )
    if cases and not labs:
        raise UsageError(
            "--case picks cases of the labs to prove, and --no-labs proves none.",
            "Leave out --no-labs, or --case.",
        )
    failed, linted = _lint(root) if lint else (False, None)
    code = 1 if failed else 0
    if labs:
        specs = _labs_to_prove(root, wanted, linted)
        if len(specs) < len(wanted):
            code = 1
        if specs:
            picked = _cases_named(specs, cases or [])
            code = max(code, _prove(specs, root, provider, jobs, picked))
    if code:
        raise typer.Exit(code)
    from sdtutor.cli.ui import console

    if lint:
        console.print("[green]The course is in order.[/]")


def _wanted(args: list[str], root: Path) -> list[Topic]:
    """The topics named by --lab (each once, in order); UsageError for one without a lab."""
    from sdtutor.errors import UsageError
    from sdtutor.topics import resolve

    topics: list[Topic] = []
    for arg in args:
        for part in arg.split(","):
            if not part.strip():
                continue
            topic = resolve(part)
            if not (root / "labs" / topic.dirname / "lab.yaml").is_file():
                present = sorted(
                    p.name for p in (root / "labs").glob("*") if (p / "lab.yaml").is_file()
                )
                raise UsageError(
                    f"The course in {root} has no lab for topic {topic.number} "
                    f"({topic.slug}): there is no labs/{topic.dirname}/lab.yaml.",
                    f"Labs there: {', '.join(present)}."
                    if present
                    else "That course has no labs yet; drop --lab.",
                )
            if topic not in topics:
                topics.append(topic)
    return topics


def _cases_named(specs: list[LabSpec], names: list[str]) -> tuple[str, ...]:
    """The case names --case gives (`wrong/NAME` or `NAME`), as proofs name them;
    UsageError for one that some lab being proved does not have."""
    from sdtutor.errors import UsageError
    from sdtutor.lab.proof import case_names

    picked: list[str] = []
    for name in names:
        for part in name.split(","):
            part = part.strip().rstrip("/")
            if not part:
                continue
            full = part if part in ("starter", "solution") or "/" in part else f"wrong/{part}"
            lacking = [lab.path.name for lab in specs if full not in case_names(lab)]
            if lacking:
                known = ", ".join(case_names(next(s for s in specs if s.path.name == lacking[0])))
                raise UsageError(
                    f"Lab {lacking[0]} has no case '{part}'.",
                    f"Its cases: {known}.",
                )
            if full not in picked:
                picked.append(full)
    return tuple(picked)


def _lint(root: Path) -> tuple[bool, list[LabSpec]]:
    """Lint the course, printing each problem: (any problems?, the labs that passed)."""
    from sdtutor.cli.ui import console, err
    from sdtutor.content.lint import lint_course

    problems, specs = lint_course(root)
    for problem in problems:
        err.print(f"[red]✗[/] {problem}", soft_wrap=True, highlight=False)
    verdict = f"[red]{len(problems)} problem(s)[/]" if problems else "[green]no problems[/]"
    console.print(f"Lint: {verdict} in {root}", soft_wrap=True)
    return bool(problems), specs


def _labs_to_prove(root: Path, wanted: list[Topic], linted: list[LabSpec] | None) -> list[LabSpec]:
    """The labs to prove: those named by --lab, else all.

    After a lint, only labs that passed it (a named lab that did not is reported and left
    out); without one, each lab is loaded here and one that does not load raises.
    """
    from sdtutor.cli.ui import err
    from sdtutor.content.loader import load_lab
    from sdtutor.topics import TOPICS

    names = [t.dirname for t in wanted]
    if linted is not None:
        by_name = {lab.path.name: lab for lab in linted}
        for name in names:
            if name not in by_name:
                err.print(f"[red]✗[/] {name} is not proved: fix its lint problems first")
        return [by_name[n] for n in names if n in by_name] if names else linted
    if not names:
        topics = {t.dirname for t in TOPICS}
        names = sorted(
            p.name
            for p in (root / "labs").glob("*")
            if p.name in topics and (p / "lab.yaml").is_file()
        )
    return [load_lab(root / "labs" / name) for name in names]


def _prove(
    specs: list[LabSpec], root: Path, provider: str | None, jobs: int, cases: tuple[str, ...] = ()
) -> int:
    """Prove labs (only `cases` of each, when given); returns the exit code (0 all proved,
    1 a case failed, 2 one could not run)."""
    import os

    workers = min(len(specs), jobs or os.cpu_count() or 1)
    if workers <= 1:
        return max(_prove_here(lab, provider, cases) for lab in specs)
    return _prove_in_parallel(specs, root, provider, workers, cases)


def _prove_here(lab: LabSpec, provider: str | None, cases: tuple[str, ...] = ()) -> int:
    """Prove one lab in this process, printing each case as it ends; 0 or 1."""
    from sdtutor.cli.ui import console, err
    from sdtutor.lab.proof import CaseOutcome, prove_lab, skip_reason
    from sdtutor.providers import select

    reason = skip_reason(lab, provider)
    if reason:
        console.print(f"Skipping lab [bold]{lab.path.name}[/]: {reason}.", soft_wrap=True)
        return 0
    chosen = select(provider, lab.instances)
    console.print(f"Proving lab [bold]{lab.path.name}[/] with the {chosen.name} provider:")

    def report(outcome: CaseOutcome) -> None:
        mark = "[green]✓[/]" if outcome.ok else "[red]✗[/]"
        console.print(f"  {mark} {outcome.case} {outcome.expectation}")
        for problem in outcome.problems:
            err.print(f"      [red]{problem}[/]", soft_wrap=True)

    started = time.monotonic()
    outcomes = prove_lab(lab, chosen, report, cases=cases or None)
    seconds = time.monotonic() - started
    bad = sum(not o.ok for o in outcomes)
    if bad:
        console.print(f"  [red]{lab.path.name}: {bad} of {len(outcomes)} case(s) went wrong[/]")
        return 1
    console.print(f"  [green]{lab.path.name} is proved[/] ({len(outcomes)} cases, {seconds:.1f} s)")
    return 0


def _prove_in_parallel(
    specs: list[LabSpec],
    root: Path,
    provider: str | None,
    workers: int,
    cases: tuple[str, ...] = (),
) -> int:
    """Prove each lab in its own process, `workers` at a time; print each lab's block whole."""
    import os
    import signal
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from rich.text import Text

    from sdtutor.cli.ui import colour_enabled, console

    env = dict(os.environ)
    if colour_enabled():
        env["FORCE_COLOR"] = "1"  # the child writes to a pipe; keep the colours it would show
    env["COLUMNS"] = str(console.width)
    running: list[subprocess.Popen[str]] = []
    stopping = False

    def prove(lab: LabSpec) -> tuple[LabSpec, int, str, float]:
        command = [sys.executable, "-m", "sdtutor", "content", "check", str(root), "--no-lint"]
        command += ["--lab", lab.path.name.split("-", 1)[1]]
        command += ["--provider", provider] if provider else []
        command += [arg for case in cases for arg in ("--case", case)]
        started = time.monotonic()
        if stopping:
            return lab, 130, "", 0.0
        with subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            # Its own session: a Ctrl-C at the terminal reaches only this process, which
            # passes one SIGINT on, so a proof is not interrupted again while it cleans up.
            start_new_session=True,
        ) as child:
            running.append(child)
            if stopping:
                child.send_signal(signal.SIGINT)
            output, _ = child.communicate()
        return lab, child.returncode, output, time.monotonic() - started

    names = ", ".join(lab.path.name for lab in specs)
    console.print(
        f"Proving {len(specs)} labs, {workers} at a time, each in its own process: {names}",
        soft_wrap=True,
    )
    started = time.monotonic()
    code = 0
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prove")
    try:
        futures = [pool.submit(prove, lab) for lab in specs]
        for future in as_completed(futures):
            lab, returncode, output, seconds = future.result()
            console.print()
            console.print(Text.from_ansi(output.rstrip("\n")), soft_wrap=True)
            if returncode not in (0, 1):
                console.print(
                    f"  [red]{lab.path.name} could not be proved[/] (exit {returncode}, "
                    f"{seconds:.1f} s)"
                )
            code = max(code, returncode if returncode in (0, 1) else 2)
    except KeyboardInterrupt:
        stopping = True
        pool.shutdown(wait=False, cancel_futures=True)
        for child in running:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)  # the proof removes what it made, then exits
        deadline = time.monotonic() + STOP_GRACE
        for child in running:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
        raise
    finally:
        pool.shutdown(wait=True)
    console.print()
    verdict = "[green]every lab is proved[/]" if code == 0 else "[red]some labs are not proved[/]"
    console.print(f"{len(specs)} labs in {time.monotonic() - started:.1f} s: {verdict}")
    return code
