"""Opens the TUI; textual is imported only here, never by the core."""


def open_tui() -> None:
    """Run the course map, or say why it cannot run here."""
    import sys

    from sdtutor.errors import UsageError

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError(
            "The course map needs a terminal.",
            "Run `sdtutor list` (or `sdtutor list --json`) for the same information as text.",
        )
    from sdtutor.tui.app import SdtutorApp  # costly import: textual

    SdtutorApp().run()
