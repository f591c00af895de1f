"""Rate limits for the API, kept in Redis so that every app server shares them.

`r` is a redis-py client (decode_responses=True) made for you and passed in. Every key
must start with the prefix in REDIS_KEY_PREFIX: the lab's Redis user may touch no other.
`now` is the current time in seconds (a float); the app passes time.time(). Use it, not
the clock: the checker places calls on both sides of a window's edge without waiting.

Right now allow() is a fixed window that reads the count, then writes it back, and
take_token() lets everything through. README.md says what the checker will try.
"""

import math
import os

PREFIX = os.environ.get("REDIS_KEY_PREFIX", "")  # e.g. "sdtutor:1a2b3c4d:rate-limiting:"


def allow(r, key, limit, window, now):
    """May the client `key` make a call now? At most `limit` calls in any `window` seconds.

    Returns (allowed, headers): headers always has X-RateLimit-Limit, X-RateLimit-Remaining
    and X-RateLimit-Reset, and Retry-After when the call is refused.
    """
    number = int(now // window)  # which window this call falls in
    counter = f"{PREFIX}fixed:{key}:{number}"
    count = int(r.get(counter) or 0)
    window_ends = (number + 1) * window
    headers = {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Reset": str(math.ceil(window_ends)),
    }
    if count >= limit:
        headers["X-RateLimit-Remaining"] = "0"
        headers["Retry-After"] = str(math.ceil(window_ends - now))
        return False, headers
    r.set(counter, count + 1)
    headers["X-RateLimit-Remaining"] = str(limit - count - 1)
    return True, headers


def take_token(r, key, capacity, rate, now):
    """Take one token from the client's bucket: True if there was one (the call may go).

    The bucket holds at most `capacity` tokens and gains `rate` tokens per second.
    """
    return True  # TODO: a token bucket in Redis
