"""How a check ends: Fail, Pass, CannotCheck, and the stops the engine makes itself."""

from __future__ import annotations

from sdtutor.lab.results import Evidence


class Fail(Exception):
    """Raised by a check that does not pass: what was seen and what to try."""

    def __init__(self, message: str, *evidence: Evidence) -> None:
        super().__init__(message)
        self.message = message
        self.evidence = evidence


class Pass(Exception):
    """A check's success, with its evidence: `return Pass(...)` or `raise Pass(...)`."""

    def __init__(self, message: str, *evidence: Evidence) -> None:
        super().__init__(message)
        self.message = message
        self.evidence = evidence


class Blocked(Fail):
    """A checker statement waited too long for a lock another session holds."""


class CannotCheck(Exception):
    """Raised when a check cannot run at all (the service is down, say)."""


class OutOfTime(BaseException):
    """Thrown into a check that is still running at the run's deadline.

    A BaseException, so that a check's `except Exception` does not swallow it.
    """


__all__ = ["Blocked", "CannotCheck", "Fail", "OutOfTime", "Pass"]
