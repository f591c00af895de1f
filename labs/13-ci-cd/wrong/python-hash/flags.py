"""Percentage feature flags: which users get a flag while it is rolled out.

is_enabled(flag, user_id, percent) is asked on every request, on every app server:
"does this user get the new checkout, now that it is on for 10% of users?"
"""

from __future__ import annotations

BUCKETS = 10_000


def is_enabled(flag: str, user_id: str, percent: float) -> bool:
    """Whether `user_id` gets `flag` while it is rolled out to `percent` % of users."""
    return hash(f"{flag}:{user_id}") % BUCKETS < percent * BUCKETS / 100
