"""A circuit breaker: stop calling a dependency that keeps failing, try again later.

    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=1.0)
    value = breaker.call(fetch, key)   # fetch(key), or CircuitOpenError at once

`clock` returns the current time in seconds (time.monotonic unless a test passes a
fake one): read the time only through it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class CircuitOpenError(Exception):
    """Refused without calling the dependency: the circuit is open."""


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 3,
        reset_timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.clock = clock
        self.failures = 0

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """fn(*args, **kwargs) through the breaker."""
        if self.failures >= self.failure_threshold:
            raise CircuitOpenError("the dependency keeps failing")
        try:
            return fn(*args, **kwargs)
        except Exception:
            self.failures += 1
            raise
