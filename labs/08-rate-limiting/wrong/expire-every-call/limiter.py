"""Rate limits for the API, kept in Redis so that every app server shares them.

`r` is a redis-py client (decode_responses=True) made for you and passed in. Every key
must start with the prefix in REDIS_KEY_PREFIX: the lab's Redis user may touch no other.
`now` is the current time in seconds (a float); the app passes time.time(). Use it, not
the clock: the checker places calls on both sides of a window's edge without waiting.
"""

import math
import os
import uuid

PREFIX = os.environ.get("REDIS_KEY_PREFIX", "")  # e.g. "sdtutor:1a2b3c4d:rate-limiting:"

# A sliding log: the times of the calls allowed in the last `window` seconds, in a sorted
# set. One script, so no other call can slip in between the count and the add.
SLIDING_LOG = """
local key, limit, window, now = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local allowed = 0
if count < limit then
  redis.call('ZADD', key, now, ARGV[4])
  count = count + 1
  allowed = 1
end
redis.call('EXPIRE', key, math.ceil(window))
-- the call whose leaving the window frees a place, and the newest call
local freeing = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
return {allowed, count, freeing[2] or '', newest[2] or ''}
"""

TOKEN_BUCKET = """
local key, capacity, rate, now = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', key, 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil or at == nil then
  tokens, at = capacity, now
end
if now > at then
  tokens = math.min(capacity, tokens + (now - at) * rate)
  at = now
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', key, 'tokens', tokens, 'at', at)
redis.call('EXPIRE', key, math.ceil(capacity / rate) + 1)
return allowed
"""


def allow(r, key, limit, window, now):
    """May the client `key` make a call now? At most `limit` calls per window."""
    counter = f"{PREFIX}count:{key}"
    with r.pipeline(transaction=True) as tx:
        tx.incr(counter)
        tx.expire(counter, math.ceil(window))  # the window starts again with each call
        count, _ = tx.execute()
    headers = {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(0, limit - count)),
        "X-RateLimit-Reset": str(math.ceil(now + window)),
    }
    if count > limit:
        headers["Retry-After"] = str(math.ceil(window))
        return False, headers
    return True, headers


def take_token(r, key, capacity, rate, now):
    """Take one token from the client's bucket: True if there was one (the call may go).

    The bucket holds at most `capacity` tokens and gains `rate` tokens per second.
    """
    return bool(r.eval(TOKEN_BUCKET, 1, f"{PREFIX}bucket:{key}", capacity, rate, repr(now)))
