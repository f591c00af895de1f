"""Who is logged in: a session token -> a user name.

Right now the sessions live in this process's memory, so a second process of the app
(behind a load balancer) has never heard of a login the first one made.
"""

from __future__ import annotations

import os
import secrets

REDIS_URL = os.environ.get("REDIS_URL", "")
PREFIX = os.environ.get("REDIS_KEY_PREFIX", "")
SESSION_SECONDS = 1800

_sessions: dict[str, str] = {}


class Unavailable(Exception):
    """The session store cannot be reached right now."""


def create(user: str) -> str:
    """Start a session for `user`; returns its token."""
    token = secrets.token_urlsafe(16)
    _sessions[token] = user
    return token


def lookup(token: str) -> str | None:
    """The user a token belongs to, or None (raises Unavailable if the store is down)."""
    return _sessions.get(token)
