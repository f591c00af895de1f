"""Session tokens: "<user id>.<hex HMAC-SHA256 of the user id>", signed with the app's key."""

from __future__ import annotations

import hashlib
import hmac
import os


def _key() -> bytes:
    """The signing key, from the environment; no key, no tokens (never a default)."""
    return os.environ["APP_SECRET"].encode()


def sign(user_id: int) -> str:
    """A token for `user_id`."""
    mac = hmac.new(_key(), str(user_id).encode(), hashlib.sha256).hexdigest()
    return f"{user_id}.{mac}"


def verify(token: str) -> int | None:
    """The user id a genuine token carries; None for anything forged or malformed."""
    user, _, mac = token.partition(".")
    if not user.isdigit():
        return None
    good = hmac.new(_key(), user.encode(), hashlib.sha256).hexdigest()
    return int(user) if hmac.compare_digest(mac, good) else None
