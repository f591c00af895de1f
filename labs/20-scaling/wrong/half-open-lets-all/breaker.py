"""A circuit breaker: stop calling a dependency that keeps failing, try again later.

    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=1.0)
    value = breaker.call(fetch, key)   # fetch(key), or CircuitOpenError at once

closed    calls go through; `failure_threshold` failures in a row open the circuit.
open      calls fail at once, without touching the dependency, for `reset_timeout` s.
half-open one caller is let through as a trial (everyone else is still refused): its
          success closes the circuit, its failure opens it for another `reset_timeout`.
"""

from __future__ import annotations

import threading
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
        self.state = "closed"
        self.failures = 0
        self.opened_at = 0.0
        self._lock = threading.Lock()  # held to change state, never while fn runs

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """fn(*args, **kwargs) through the breaker."""
        with self._lock:
            if self.state == "open":
                if self.clock() - self.opened_at < self.reset_timeout:
                    raise CircuitOpenError("open: not calling the dependency")
                self.state = "half-open"  # callers try until one of them succeeds
                trial = True
            elif self.state == "half-open":
                trial = True
            else:
                trial = False
        try:
            result = fn(*args, **kwargs)
        except Exception:
            with self._lock:
                self.failures += 1
                if trial or self.failures >= self.failure_threshold:
                    self.state = "open"
                    self.opened_at = self.clock()
            raise
        with self._lock:
            self.failures = 0
            self.state = "closed"
        return result
