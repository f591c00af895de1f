"""Percentage feature flags: which users get a flag while it is rolled out.

is_enabled(flag, user_id, percent) is asked on every request, on every app server:
"does this user get the new checkout, now that it is on for 10% of users?"

This first try looks reasonable and passes a quick test on a laptop. `sdtutor lab check`
shows what it does across processes and across flags.
"""

from __future__ import annotations


def is_enabled(flag: str, user_id: str, percent: float) -> bool:
    """Whether `user_id` gets `flag` while it is rolled out to `percent` % of users."""
    return hash(user_id) % 100 < percent
