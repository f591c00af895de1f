"""Session tokens: "<user id>.<hex HMAC-SHA256 of the user id>", signed with the app's key."""

from __future__ import annotations

import hashlib
import hmac

SECRET = "sk-dev-7d2f9a41c08e4b6a95e3"


def sign(user_id: int) -> str:
    """A token for `user_id`."""
    mac = hmac.new(SECRET.encode(), str(user_id).encode(), hashlib.sha256).hexdigest()
    return f"{user_id}.{mac}"


def verify(token: str) -> int | None:
    """The user id a genuine token carries; None for anything forged or malformed."""
    user, _, mac = token.partition(".")
    if not user.isdigit():
        return None
    good = hmac.new(SECRET.encode(), user.encode(), hashlib.sha256).hexdigest()
    return int(user) if hmac.compare_digest(mac, good) else None
