"""The canary gate: after each window of traffic, move the canary on, wait, or undo it.

decide(baseline, canary) gets the same window's numbers for the version in production
(baseline) and the new one (canary), each a dict:

    {"requests": 2000, "errors": 5, "p50_ms": 81.0, "p99_ms": 185.0}

and returns "promote" (widen the canary: 10% -> 50% -> 100%), "hold" (keep its share
and wait for more traffic) or "rollback" (send its traffic back to the baseline).
"""

from __future__ import annotations

MAX_ERROR_RATE = 0.01


def decide(baseline: dict, canary: dict) -> str:
    """promote, hold or rollback, for one window of traffic split between two versions."""
    if canary["errors"] / canary["requests"] > MAX_ERROR_RATE:
        return "rollback"
    return "promote"
