"""When to wake someone up.

The SLO: 99.9% of requests to the order API succeed (no 5xx), over 30 days.

should_page(history) is called once a minute. `history` holds one sample per minute,
oldest first, the minute that just ended last, and at most the last 360 minutes:

    {"minute": 412, "requests": 1043, "errors": 1, "cpu": 0.46, "p99_ms": 231}

`errors` are requests answered 5xx; `cpu` is the busiest instance's CPU (0 to 1).
Return True to page the on-call engineer now.
"""

from __future__ import annotations

from typing import Any

SLO = 0.999
BUDGET = 1 - SLO  # the share of requests allowed to fail


def should_page(history: list[dict[str, Any]]) -> bool:
    last = history[-1]
    if last["cpu"] > 0.9:
        return True  # the machine is struggling
    return last["errors"] / max(last["requests"], 1) > 0.01
