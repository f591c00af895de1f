"""Who is logged in: a session token -> a user name, kept in Redis.

Every process of the app reads the same Redis, so a login made by one is known to all.
Calls to Redis go through a circuit breaker: when Redis is down, a few requests find
out (each within a short timeout), then the rest are told Unavailable at once.
"""

from __future__ import annotations

import os
import secrets

import redis

from breaker import CircuitBreaker, CircuitOpenError

REDIS_URL = os.environ.get("REDIS_URL", "")
PREFIX = os.environ.get("REDIS_KEY_PREFIX", "")
SESSION_SECONDS = 1800

# Short timeouts and no retries inside the client: the breaker decides when to try again.
_redis = redis.Redis.from_url(
    REDIS_URL,
    decode_responses=True,
    socket_timeout=0.5,
    socket_connect_timeout=0.5,
    retry=None,
)
_breaker = CircuitBreaker(failure_threshold=3, reset_timeout=1.0)


class Unavailable(Exception):
    """The session store cannot be reached right now."""


def _key(token: str) -> str:
    return f"{PREFIX}session:{token}"


def create(user: str) -> str:
    """Start a session for `user`; returns its token."""
    token = secrets.token_urlsafe(16)
    try:
        _breaker.call(_redis.set, _key(token), user, ex=SESSION_SECONDS)
    except (CircuitOpenError, redis.RedisError) as exc:
        raise Unavailable(str(exc)) from exc
    return token


def lookup(token: str) -> str | None:
    """The user a token belongs to, or None (raises Unavailable if the store is down)."""
    try:
        user: str | None = _redis.get(_key(token))
    except (CircuitOpenError, redis.RedisError) as exc:
        raise Unavailable(str(exc)) from exc
    return user
