"""`sdtutor content check [PATH]`: lint a course, then prove its labs."""

from pathlib import Path

import typer

app = typer.Typer(help="Tools for course authors.", no_args_is_help=True)


@app.command("check")
def check(
    path: Path = typer.Argument(None, help="A course folder (default: the built-in course)."),
    labs: bool = typer.Option(
        True, "--labs/--no-labs", help="Also prove each lab on real services (slower)."
    ),
    provider: str = typer.Option(None, "--provider", "-p", help="Provider for the lab proofs."),
) -> None:
    """Lint lessons, quizzes and labs; prove each lab's starter, solution and wrong cases."""
    from sdtutor import locations
    from sdtutor.cli.ui import console, err
    from sdtutor.content.lint import lint_course

    root = (path or locations.course_dir()).resolve()
    problems, lab_specs = lint_course(root)
    for problem in problems:
        err.print(f"[red]✗[/] {problem}", soft_wrap=True)
    verdict = f"[red]{len(problems)} problem(s)[/]" if problems else "[green]no problems[/]"
    console.print(f"Lint: {verdict} in {root}")
    failed = bool(problems)
    if labs and lab_specs:
        from sdtutor.lab.proof import CaseOutcome, prove_lab
        from sdtutor.providers import select

        for lab in lab_specs:
            chosen = select(provider, list(lab.services))
            console.print(f"Proving lab [bold]{lab.path.name}[/] with the {chosen.name} provider:")

            def report(outcome: CaseOutcome) -> None:
                mark = "[green]✓[/]" if outcome.ok else "[red]✗[/]"
                console.print(f"  {mark} {outcome.case} {outcome.expectation}")
                for problem in outcome.problems:
                    err.print(f"      [red]{problem}[/]", soft_wrap=True)

            outcomes = prove_lab(lab, chosen, report)
            failed = failed or not all(o.ok for o in outcomes)
    if failed:
        raise typer.Exit(1)
    console.print("[green]The course is in order.[/]")
