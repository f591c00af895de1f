"""The canary gate: compare the new version with the one it would replace."""

from __future__ import annotations

import math

MIN_REQUESTS = 500
"""Below this many canary requests, one unlucky request would decide: wait for more."""
Z_LIMIT = 3.0
"""How many standard errors above the baseline the canary's error rate may be."""
P99_SLACK = 1.25
"""The canary's p99 may be this many times the baseline's (plus P99_MARGIN_MS)."""
P99_MARGIN_MS = 10.0


def error_z(baseline: dict, canary: dict) -> float:
    """How far the canary's error rate is above the baseline's, in standard errors."""
    n1, n2 = baseline["requests"], canary["requests"]
    e1, e2 = baseline["errors"], canary["errors"]
    pooled = (e1 + e2 + 1) / (n1 + n2 + 2)  # +1/+2: a rate of 0 has some uncertainty too
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return (e2 / n2 - e1 / n1) / se


def decide(baseline: dict, canary: dict) -> str:
    """promote, hold or rollback, for one window of traffic split between two versions."""
    if canary["requests"] < MIN_REQUESTS:
        return "hold"
    if canary["errors"] / canary["requests"] > 0.01:  # 1% is too many
        return "rollback"
    if canary["p99_ms"] > baseline["p99_ms"] * P99_SLACK + P99_MARGIN_MS:
        return "rollback"
    return "promote"
