"""Percentage feature flags: which users get a flag while it is rolled out.

is_enabled(flag, user_id, percent) is asked on every request, on every app server:
"does this user get the new checkout, now that it is on for 10% of users?"
"""

from __future__ import annotations

import hashlib

BUCKETS = 10_000
"""Users fall into this many buckets per flag; a percentage turns on the lowest ones."""


def bucket(flag: str, user_id: str) -> int:
    """The user's bucket for this flag: fixed for ever, the same in every process."""
    digest = hashlib.sha256(user_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def is_enabled(flag: str, user_id: str, percent: float) -> bool:
    """Whether `user_id` gets `flag` while it is rolled out to `percent` % of users."""
    return bucket(flag, user_id) < percent * BUCKETS / 100
