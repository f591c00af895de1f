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

# Multi-window burn rate (The Site Reliability Workbook, "Alerting on SLOs"): page when
# the last hour burns the budget 14.4 times too fast (2% of a month's budget gone), and
# the last 5 minutes still do, so the page stops soon after the problem does.
LONG, SHORT, BURN = 60, 5, 14.4


def burn_rate(history: list[dict[str, Any]], minutes: int) -> float:
    window = history[-minutes:]
    requests = sum(m["requests"] for m in window)
    errors = sum(m["errors"] for m in window)
    return errors / requests / BUDGET if requests else 0.0


def should_page(history: list[dict[str, Any]]) -> bool:
    # CPU is a cause, not a symptom: it belongs on a dashboard, not on the pager.
    return burn_rate(history, LONG) > BURN and burn_rate(history, SHORT) > BURN
