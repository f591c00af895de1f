"""The TUI: a textual front end over the headless core (the core never imports textual)."""

from sdtutor.tui.app import SdtutorApp

__all__ = ["SdtutorApp"]
