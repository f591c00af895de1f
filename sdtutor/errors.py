"""One error family: what went wrong, and what to do next.

Raised in the core, caught once at the edge (the CLI or the TUI) and shown as a short
panel. Nothing a user can cause should end in a traceback.
"""

from __future__ import annotations


class SdtutorError(Exception):
    """A problem the user can act on; `hint` says how."""

    exit_code = 2

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message


class UsageError(SdtutorError):
    """The command line asked for something that does not exist (an unknown topic, say)."""


class ContentError(SdtutorError):
    """A course file is missing or malformed; the message names file and line."""

    def __init__(self, message: str, hint: str = "", *, path: str = "", line: int = 0) -> None:
        where = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
        super().__init__(where + message, hint)
        self.detail = message
        """The message without its file and line (for tools that show those apart)."""
        self.path = path
        self.line = line


class LabError(SdtutorError):
    """A lab cannot do what was asked (not started, check cannot run, ...)."""


class ProviderError(SdtutorError):
    """A service provider cannot start, reach or stop a service."""


class ProgressError(SdtutorError):
    """The progress store cannot be read or written."""


__all__ = [
    "ContentError",
    "LabError",
    "ProgressError",
    "ProviderError",
    "SdtutorError",
    "UsageError",
]
