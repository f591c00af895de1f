"""The `sdtutor` command: joins the command groups and catches errors once, at the edge."""

import sys

import typer

from sdtutor import __version__
from sdtutor.cli import content, doctor, lab, learn, listing, progress, quiz
from sdtutor.errors import SdtutorError

app = typer.Typer(
    name="sdtutor",
    help="A terminal tutor for backend system design: lessons, quizzes and hands-on labs "
    "on real PostgreSQL, Redis and RabbitMQ. Run with no command for the course map.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sdtutor {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """sdtutor: learn backend system design by reading, answering and building."""
    if ctx.invoked_subcommand is None:
        from sdtutor.cli.tui import open_tui

        open_tui()


@app.command("tui")
def tui() -> None:
    """Open the course map (the same as running sdtutor with no command)."""
    from sdtutor.cli.tui import open_tui

    open_tui()


listing.register(app)
learn.register(app)
quiz.register(app)
app.add_typer(lab.app, name="lab")
app.add_typer(progress.app, name="progress")
doctor.register(app)
app.add_typer(content.app, name="content")


def _run_app() -> object:
    try:
        return app(standalone_mode=False)
    finally:
        _flush_notices()


def _flush_notices() -> None:
    """Show notices the core left for the user (only if the store was used)."""
    store = sys.modules.get("sdtutor.progress.store")
    if store is not None and store.PENDING_NOTICES:
        from sdtutor.cli.ui import notice

        for message in store.PENDING_NOTICES:
            notice(message)
        store.PENDING_NOTICES.clear()


def run() -> None:
    """Entry point: run the app; user-caused errors become a panel and exit code 2."""
    from sdtutor.cli.ui import show_error

    try:
        code = _run_app()
        if code == 130:  # typer turns Ctrl-C into Exit(130)
            raise KeyboardInterrupt
        if isinstance(code, int) and code:
            sys.exit(code)
    except SdtutorError as error:
        show_error(error)
        sys.exit(error.exit_code)
    except (KeyboardInterrupt, typer.Abort):  # click turns Ctrl-C into Abort
        from sdtutor.cli.ui import err

        err.print("\nInterrupted. Nothing was left half-done; your progress is saved.")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors arrive here in non-standalone mode
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            typer.echo(f"Error: {exc}", err=True)
        sys.exit(getattr(exc, "exit_code", 2))


__all__ = ["app", "run"]
